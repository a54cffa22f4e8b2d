"""The classic ``request.url`` path follows the same front-end rule as WSGI and ASGI
(``smisk.core.frontend.split_path``): joined, the split is the path the client asked for.
Params are sent as the front ends send them, with the test FastCGI client, to a sync and an
async service."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.core.conftest import Web
from tests.support.fcgi_client import begin_record, params_records, stdin_records


def url_of(web: Web, params: dict[str, str]) -> list[Any]:
    """The url parts the /info route reports (it routes on the last path segment)."""
    sent = {"REQUEST_METHOD": "GET", "SERVER_NAME": "s", "SERVER_PORT": "80"} | params
    pairs = [(k.encode(), v.encode("utf-8")) for k, v in sent.items()]
    with web.fcgi() as client:
        client.send(begin_record(1) + params_records(1, pairs) + stdin_records(1, b""))
        _headers, body = client.read_response(1).split()
    return json.loads(body)["url_parts"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("params", "path", "query"),
    [
        # Debian's snippets/fastcgi-php.conf: PATH_INFO empty, SCRIPT_NAME the path.
        (
            {"REQUEST_URI": "/caf%C3%A9/info?x=1", "SCRIPT_NAME": "/café/info", "PATH_INFO": ""},
            "/café/info",
            "x=1",
        ),
        # Caddy handle_path /strip/*: the mount point is in REQUEST_URI only.
        ({"REQUEST_URI": "/strip/info", "SCRIPT_NAME": "", "PATH_INFO": "/info"}, "/strip/info", None),
        # nginx after an internal rewrite of /old/info to /new/info: the client's path.
        ({"REQUEST_URI": "/old/info", "SCRIPT_NAME": "/new/info"}, "/old/info", None),
        # An encoded slash: decoded in the path, as in PATH_INFO.
        ({"REQUEST_URI": "/a%2Fb/info", "SCRIPT_NAME": "/a/b/info"}, "/a/b/info", None),
        # fastcgi_split_path_info at /app: the split is kept, joined it is the path.
        ({"REQUEST_URI": "/app/info?", "SCRIPT_NAME": "/app", "PATH_INFO": "/info"}, "/app/info", ""),
    ],
)  # fmt: skip
def test_url_path_is_the_requested_path(
    web: Web, params: dict[str, str], path: str, query: str | None
) -> None:
    scheme, _user, _host, _port, url_path, url_query = url_of(web, params)
    assert (scheme, url_path, url_query) == ("http", path, query)


def test_forwarded_proto_needs_a_trusted_proxy(web: Web) -> None:
    # The test app's handler names no proxies: X-Forwarded-Proto is not believed.
    params = {"REQUEST_URI": "/info", "SCRIPT_NAME": "/info", "REMOTE_ADDR": "127.0.0.1"}
    assert url_of(web, params | {"HTTP_X_FORWARDED_PROTO": "https"})[0] == "http"
    assert url_of(web, params | {"HTTPS": "on"})[0] == "https"
