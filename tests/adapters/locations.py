"""nginx locations for the path tests: Debian's ``snippets/fastcgi-php.conf`` and a
``fastcgi_split_path_info`` split at ``/app``, in front of the ``backend`` upstream of
``tests.support.nginx.Nginx`` (given to the ``front`` fixture as ``extra``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tests.support.nginx import FASTCGI_PARAMS

SNIPPET = Path("/etc/nginx/snippets/fastcgi-php.conf")


def split_locations(tmp_path: Path, php_prefix: str, files: Iterable[str]) -> str:
    """Paths under ``php_prefix`` go through the snippet as Debian ships it (its relative
    include made absolute: the test nginx has its own prefix); ``/app/...`` is split into
    SCRIPT_NAME ``/app`` and PATH_INFO. The snippet's ``try_files $fastcgi_script_name =404``
    wants each path in the document root: ``files`` are created there (a path ending in ``/``
    is ``index.php`` in that directory, by ``fastcgi_index``)."""
    docroot = tmp_path / "docroot"
    for name in files:
        (docroot / name).parent.mkdir(parents=True, exist_ok=True)
        (docroot / name).write_text("")
    snippet = tmp_path / "fastcgi-php.conf"
    text = SNIPPET.read_text()
    assert "include fastcgi.conf;" in text
    snippet.write_text(text.replace("include fastcgi.conf;", "include /etc/nginx/fastcgi.conf;"))
    return f"""
    location ^~ /app/ {{
      fastcgi_split_path_info ^(/app)(/.*)$;
      include {FASTCGI_PARAMS};
      fastcgi_param PATH_INFO $fastcgi_path_info;
      fastcgi_pass backend;
    }}
    location ~ ^{php_prefix} {{
      root {tmp_path / "docroot"};
      include {snippet};
      fastcgi_pass backend;
    }}
"""
