"""The XHTML error page of the classic Smisk.

Rules: every piece of text is HTML-escaped. The detailed fragment (message, traceback, server
address) is for development; ``status_fragment`` is what a client sees in production: the status,
nothing the application or the server said about itself.
"""

from __future__ import annotations

import html
from http import HTTPStatus

__all__ = ["error_fragment", "error_page", "status_fragment", "status_line"]

_STYLE = "\n".join(
    (
        "body,html { margin:0; padding:0; font-family:sans-serif; background:#ddd; }",
        "h1 { padding:20px 20px 15px 20px; margin:0; background:#f99; color:#300; }",
        "address, p { margin:15px 20px; }",
        "p.message { background:#fff; padding:10px; font-family:monospace; }",
        "pre.traceback { margin:15px 20px; padding:10px; background:#ffc; overflow:auto; }",
        "hr { display:none; }",
        "address { font-size:small; color:#666; }",
    )
)
_HEAD_START = "<html><head><title>"
_HEAD_END = '</title><style type="text/css">\n' + _STYLE + "\n</style></head><body>"
_FOOT = "</body></html>"


def status_line(status: int) -> str:
    """``"500 Internal Server Error"`` for 500."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def error_fragment(
    heading: str, message: str, details: str, software: str, host: str, port: str
) -> str:
    """The part of the error page that is appended when output has already begun."""
    esc = html.escape
    return (
        f"<h1>{esc(heading)}</h1>\n"
        f'<p class="message">{esc(message)}</p>\n'
        f'<pre class="traceback">{esc(details)}</pre>\n'
        f"<hr/><address>{esc(software)} at {esc(host)} port {esc(port)}</address>\n"
    )


def status_fragment(status: int) -> str:
    """The production fragment: a heading with the status line and nothing else."""
    return f"<h1>{html.escape(status_line(status))}</h1>\n"


def error_page(title: str, fragment: str) -> str:
    """A complete XHTML page around ``fragment``."""
    return _HEAD_START + html.escape(title) + _HEAD_END + fragment + _FOOT + "\r\n"
