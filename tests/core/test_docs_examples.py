"""Every example of the classic documentation, run as written (Python 3 syntax aside), behind
nginx; each app example also has an async twin. Then the original's URL/xml vectors and the
``pack`` table through the classic ``smisk.core`` names.

Where the rendered documentation lost a line (an ``else:``, the argument of ``json_decode``,
a URL inside a string), the obvious original is restored and marked ``# restored``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import smisk
import smisk.core
from smisk.runtime.handler import ApplicationHandler
from tests.support.nginx import Nginx
from tests.support.serving import ROOT, ServerThread


@pytest.fixture(autouse=True)
def _keep_current_application() -> Iterator[None]:
    previous = smisk.core.Application.current
    yield
    smisk.core.Application.current = previous


@contextmanager
def served(instance: Any, workdir: Path) -> Iterator[Nginx]:
    sock = tempfile.mktemp(prefix="smisk-doc-", suffix=".sock", dir="/tmp")
    handler = ApplicationHandler(instance)
    try:
        with ServerThread(handler, [sock]) as server, Nginx(workdir, server.addresses) as ng:
            yield ng
    finally:
        handler.close()


def run_example(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "example"}
    exec(textwrap.dedent(source), namespace)
    return namespace


# -- the module-level example -------------------------------------------------------------------


def test_application_current_and_app_proxy_example() -> None:
    namespace = run_example(
        """
        import smisk
        import smisk.core
        created = smisk.core.Application()
        """
    )
    created = namespace["created"]
    assert re.fullmatch(r"<smisk\.core\.Application object at 0x[0-9a-f]+>", repr(created))
    assert repr(smisk.core.app) == repr(created)  # the proxy shows the same object
    assert smisk.core.Application.current is created
    assert smisk.app == created


# -- Application examples -----------------------------------------------------------------------

HELLO = """
from smisk.core import Application
class MyApp(Application):
  def service(self):
    self.response.write('<h1>Hello World!</h1>')
"""

HELLO_ASYNC = """
from smisk.core import Application
class MyApp(Application):
  async def service(self):
    self.response.write('<h1>Hello World!</h1>')
"""


@pytest.mark.parametrize("source", [HELLO, HELLO_ASYNC], ids=["sync", "async"])
def test_simple_example(source: str, tmp_path: Path) -> None:
    app = run_example(source)["MyApp"]()
    with served(app, tmp_path) as ng:
        assert ng.get("/")[2] == b"<h1>Hello World!</h1>"


STANDALONE = """
from smisk.core import Application, bind
class MyApp(Application):
  def service(self):
    self.response.write('<h1>Hello World!</h1>')

bind({address!r})  # restored: the example binds, then runs
print('bound', flush=True)
MyApp().run()
print('returned', flush=True)
"""


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_standalone_example(kind: str, tmp_path: Path) -> None:
    address = tempfile.mktemp(prefix="smisk-doc-", suffix=".sock", dir="/tmp")
    source = STANDALONE.format(address=address)
    if kind == "async":
        source = source.replace("def service", "async def service")
    script = tmp_path / "standalone.py"
    script.write_text(source)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "bound"
        with Nginx(tmp_path / "nginx", [address]) as ng:
            assert ng.get("/")[2] == b"<h1>Hello World!</h1>"
        proc.terminate()  # SIGTERM: run() stops accepting and returns
        assert proc.wait(30) == 0
        assert proc.stdout.read().strip() == "returned"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


CUSTOM_REQUEST = """
from smisk.core import Application, Request
class MyRequest(Request):
  def from_internet_explorer(self):
    return self.env.get('HTTP_USER_AGENT','').find('MSIE') != -1

class MyApp(Application):
  def __init__(self):
    super(MyApp, self).__init__()
    self.request_class = MyRequest

  def service(self):
    if self.request.from_internet_explorer():
      self.response.write('<h1>Good bye, cruel World!</h1>')
    else:  # restored
      self.response.write('<h1>Hello World!</h1>')
"""


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_custom_request_class_example(kind: str, tmp_path: Path) -> None:
    source = (
        CUSTOM_REQUEST
        if kind == "sync"
        else CUSTOM_REQUEST.replace("def service", "async def service")
    )
    app = run_example(source)["MyApp"]()
    with served(app, tmp_path) as ng:
        ie = {"User-Agent": "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"}
        assert ng.get("/", headers=ie)[2] == b"<h1>Good bye, cruel World!</h1>"
        assert ng.get("/", headers={"User-Agent": "Firefox"})[2] == b"<h1>Hello World!</h1>"


ERROR_OVERRIDE = """
from smisk.core import Application

class MyExceptionType(Exception):  # restored: the example's own exception type
  pass

class MyApp(Application):
  def service(self):
    if self.request.get.get('nice'):
      raise MyExceptionType('handled nicely')
    raise ValueError('<not handled>')

  def nice_error_response(self, typ, val):  # restored: the example's own helper
    self.response.headers = ['Status: 503 Service Unavailable', 'Content-Type: text/plain']
    self.response('Sorry: ', str(val))

  def error(self, typ, val, tb):
   if isinstance(val, MyExceptionType):
    self.nice_error_response(typ, val)
   else:  # restored
    Application.error(self, typ, val, tb)
"""


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_error_override_example(kind: str, tmp_path: Path) -> None:
    source = (
        ERROR_OVERRIDE
        if kind == "sync"
        else ERROR_OVERRIDE.replace("def service", "async def service")
    )
    app = run_example(source)["MyApp"]()
    with served(app, tmp_path) as ng:
        status, headers, body = ng.get("/?nice=1")
        assert (status, body) == (503, b"Sorry: handled nicely")
        assert headers["Content-Type"] == "text/plain"
        status, _, body = ng.get("/")
        assert status == 500
        assert b"&lt;not handled&gt;" in body and b"<not handled>" not in body


JSON_EXAMPLE = """
from smisk.core import *
from smisk.core.serialization.json import json_decode
class App(Application):
  def service(self):
    if request.env['REQUEST_METHOD'] == 'POST':
      response('Input: ', repr(json_decode(request.input.read())), "\\n")  # restored argument
"""

JSON_EXAMPLE_ASYNC = """
from smisk.core import *
from smisk.core.serialization.json import json_decode
class App(Application):
  async def service(self):
    if request.env['REQUEST_METHOD'] == 'POST':
      response('Input: ', repr(json_decode(await request.input.aread())), "\\n")
"""


@pytest.mark.parametrize("source", [JSON_EXAMPLE, JSON_EXAMPLE_ASYNC], ids=["sync", "async"])
def test_json_input_example(source: str, tmp_path: Path) -> None:
    app = run_example(source)["App"]()
    data = b'{"Url": "http://www.example.com/", "Position": [125, "100"]}'
    expected = b"Input: {'Url': 'http://www.example.com/', 'Position': [125, '100']}\n"
    with served(app, tmp_path) as ng:
        as_json = ng.get("/", data=data, headers={"Content-Type": "application/json"})
        # The documentation's `curl --data-binary` sends it as form-urlencoded.
        as_curl = ng.get(
            "/", data=data, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    assert as_json[:1] == as_curl[:1] == (200,)
    assert as_json[2] == as_curl[2] == expected


HTTPS_EXAMPLE = """
from smisk.core import *
class App(Application):
  def service(self):
    if request.url.scheme == 'https':
      response('Secure connection')
    else:  # restored
      response('Big brother is watching you')
"""


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_url_scheme_example(kind: str, tmp_path: Path) -> None:
    source = (
        HTTPS_EXAMPLE
        if kind == "sync"
        else HTTPS_EXAMPLE.replace("def service", "async def service")
    )
    app = run_example(source)["App"]()
    extra = """
    location /tls/ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param HTTPS on;
      fastcgi_pass unix:{sock};
    }"""
    sock = tempfile.mktemp(prefix="smisk-doc-", suffix=".sock", dir="/tmp")
    handler = ApplicationHandler(app)
    try:
        with (
            ServerThread(handler, [sock]),
            Nginx(tmp_path, [sock], extra=extra.replace("{sock}", sock)) as ng,
        ):
            assert ng.get("/")[2] == b"Big brother is watching you"
            assert ng.get("/tls/")[2] == b"Secure connection"
    finally:
        handler.close()


# -- URL, decompose_query, pack and uid examples --------------------------------------------


def test_url_examples() -> None:
    from smisk.core import URL

    assert URL("http://host.name:1234/some/path").to_s() == "http://host.name:1234/some/path"
    assert (
        URL("http://host.name:1234/some/path").to_s(host="another.host")
        == "http://another.host:1234/some/path"
    )
    url = URL("https://host:443/some/path")
    assert url.to_s(port=url.port not in (80, 443)) == "https://host/some/path"
    assert URL.decompose_query("name=Jack%20%C3%B6l&age=53") == {
        "age": "53",
        "name": "Jack \u00f6l",
    }


def test_build_urn_on_both_namespaces() -> None:
    for module in (smisk, smisk.core):
        assert re.fullmatch(r"urn:[a-z0-9][a-z0-9-]{0,31}:\S+", module.__build__)
    assert smisk.__build__ == smisk.core.__build__


PACK_TABLE = [
    (bytes(20), "0" * 40, "0" * 32, "0" * 27),
    (b"\xff" * 20, "f" * 40, "v" * 32, "-" * 26 + "f"),
    (
        bytes(range(20)),
        "00102030405060708090a0b0c0d0e0f001112131",
        "0804g1g05g1e0441ao2og6o1f04219c2",
        "04w03gg16s029EM2cQw3f0h4ic1",
    ),
    (b"\x01", "10", "10", "10"),
    (b"\xab\xcd", "badc", "bdj1", "HSc"),
]


@pytest.mark.parametrize(("data", "n4", "n5", "n6"), PACK_TABLE)
def test_pack_table(data: bytes, n4: str, n5: str, n6: str) -> None:
    from smisk.core import pack

    assert (pack(data, 4), pack(data), pack(data, 5), pack(data, 6)) == (n4, n5, n5, n6)


def test_pack_rejects_other_bit_counts() -> None:
    for nbits in (0, 3, 7):
        with pytest.raises(ValueError, match=f"Invalid number of bits: {nbits}"):
            smisk.core.pack(bytes(20), nbits)


def test_uid_shapes() -> None:
    from smisk.core import uid

    assert re.fullmatch(r"[0-9a-v]{32}", uid())
    assert re.fullmatch(r"[0-9a-v]{32}", uid(5, "node"))
    assert re.fullmatch(r"[0-9a-f]{40}", uid(4))
    assert re.fullmatch(r"[0-9a-zA-Z_-]{27}", uid(6))
    raw = uid(0)
    assert isinstance(raw, bytes) and len(raw) == 20
    assert uid() != uid()
    with pytest.raises(ValueError):
        uid(3)


def test_object_hash() -> None:
    from smisk.core import object_hash

    assert object_hash("abc") == hash("abc")
    assert object_hash({"a": [1, 2]}) == object_hash({"a": [1, 2]})
    assert object_hash({"a": 1}) != object_hash({"a": 2})


def test_helper_modules_of_the_examples() -> None:
    from smisk.core.objectproxy import ObjectProxy
    from smisk.core.serialization.json import json_decode, json_encode

    assert json_decode(json_encode({"a": [1, "b"]})) == {"a": [1, "b"]}
    assert isinstance(smisk.core.app, ObjectProxy)
    assert isinstance(smisk.core.request, ObjectProxy)
    assert isinstance(smisk.core.response, ObjectProxy)


# -- the original's URL and xml test vectors, through smisk.core --------------------------------

RAW = "http://abc.se:12/mos/j\u00e4ger/grek land/hej.html?mos=japp&\u00f6land=nej#ge-mig/d\u00e5"
ESCAPED = (
    "http%3A//abc.se%3A12/mos/j%C3%A4ger/grek%20land/hej.html?mos=japp&%C3%B6land=nej"
    "%23ge-mig/d%C3%A5"
)
ENCODED = (
    "http%3A%2F%2Fabc.se%3A12%2Fmos%2Fj%C3%A4ger%2Fgrek%20land%2Fhej.html%3Fmos%3Djapp%26"
    "%C3%B6land%3Dnej%23ge-mig%2Fd%C3%A5"
)


def test_url_encode_escape_decode_vectors() -> None:
    from smisk.core import URL

    assert URL.escape(RAW) == ESCAPED
    assert URL.encode(RAW) == ENCODED
    assert URL.decode(ESCAPED) == RAW
    assert URL.decode(ENCODED) == RAW
    assert URL.unescape(ESCAPED) == URL.decode(ESCAPED)
    assert URL.decode("foo%2Bbar@internets.com") == "foo+bar@internets.com"
    assert type(URL.encode("foo+bar@internets.com")) is str
    assert type(URL.encode(b"foo+bar@internets.com")) is bytes
    assert type(URL.escape("x")) is str and type(URL.escape(b"x")) is bytes
    assert type(URL.decode("foo%2Bbar")) is str and type(URL.decode(b"foo%2Bbar")) is bytes
    clean = "hello/john"
    assert URL.escape(clean) is clean
    clean2 = "hello_john"
    assert URL.encode(clean2) is clean2


PARSE_VECTORS = [
    (
        "http://john:secret@www.mos.tld/some/path.ext?arg1=245&arg2=hej%20du#chapter5",
        {
            "scheme": "http",
            "user": "john",
            "password": "secret",
            "host": "www.mos.tld",
            "path": "/some/path.ext",
            "query": "arg1=245&arg2=hej%20du",
            "fragment": "chapter5",
        },
    ),
    (
        "https://john@www.mos.tld/some/path.ext?arg1=245&arg2=hej%20du#chapter5",
        {
            "scheme": "https",
            "user": "john",
            "password": None,
            "host": "www.mos.tld",
            "path": "/some/path.ext",
            "query": "arg1=245&arg2=hej%20du",
            "fragment": "chapter5",
        },
    ),
    (
        "http://www.mos.tld/some/path.ext?arg1=245&arg2=hej%20du-chapter5",
        {"query": "arg1=245&arg2=hej%20du-chapter5", "fragment": None},
    ),
    (
        "http://www.mos.tld/some/path.ext?arg1=245&arg2=hej%20du?chapter5",
        {"query": "arg1=245&arg2=hej%20du?chapter5", "fragment": None},
    ),
    ("http://www.mos.tld/some/path.ext?", {"query": "", "fragment": None}),
    (
        "http://www.mos.tld/some/path.ext#arg1=245&arg2=hej%20du-chapter5",
        {"query": None, "fragment": "arg1=245&arg2=hej%20du-chapter5"},
    ),
    (
        "http://www.mos.tld/some/path.ext#arg1=245&arg2=hej%20du?chapter5",
        {"query": None, "fragment": "arg1=245&arg2=hej%20du?chapter5"},
    ),
    ("http://www.mos.tld/some/path.ext#", {"query": None, "fragment": ""}),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_VECTORS)
def test_url_parse_vectors(text: str, expected: dict[str, Any]) -> None:
    url = smisk.core.URL(text)
    assert {name: getattr(url, name) for name in expected} == expected


def test_decompose_query_vectors() -> None:
    from smisk.core import URL

    q = URL.decompose_query(
        URL("http://a/?email=foo%2Bbar@internets.com&&stale_key&&mos=abc&mos=123&&&").query
    )
    assert q["email"] == "foo+bar@internets.com"
    assert q["stale_key"] is None
    assert q["mos"] == ["abc", "123"]
    assert set(q) <= {"email", "stale_key", "mos"}
    assert URL.decompose_query("name=%E5%E4%F6", "latin_1", False) == {"name": "\u00e5\u00e4\u00f6"}
    assert URL.decompose_query("name=%C3%A5%C3%A4%C3%B6%EF%A3%BF", charset="utf-8") == {
        "name": "\u00e5\u00e4\u00f6\uf8ff"
    }
    with pytest.raises(UnicodeDecodeError):
        URL.decompose_query("name=%E5%E4%F6", "utf-8", False)


U1 = "http://john:secret@fisk.tld:1983/some/path.ext?arg1=245&arg2=hej%20du#chapter5"
Q, F = "?arg1=245&arg2=hej%20du", "#chapter5"


def test_to_s_vectors() -> None:
    from smisk.core import URL

    u1 = URL(U1)
    assert u1.to_s() == str(u1) == U1
    port = URL("http://fisk.tld:1983/some/path")
    assert port.to_s(port=0) == "http://fisk.tld/some/path"
    assert port.to_s(port80=0) == "http://fisk.tld:1983/some/path"
    assert port.to_s(port=0, port80=1) == "http://fisk.tld/some/path"
    port80 = URL("http://fisk.tld:80/some/path")
    for kwargs in ({"port": 0}, {"port80": 0}, {"port": 0, "port80": 1}):
        assert port80.to_s(**kwargs) == "http://fisk.tld/some/path"
    assert u1.to_s(scheme=0) == "john:secret@fisk.tld:1983/some/path.ext" + Q + F
    assert u1.to_s(user=0) == "http://fisk.tld:1983/some/path.ext" + Q + F
    assert u1.to_s(password=0) == "http://john@fisk.tld:1983/some/path.ext" + Q + F
    assert u1.to_s(host=0) == "http://john:secret@:1983/some/path.ext" + Q + F
    assert u1.to_s(port=0, path=0) == "http://john:secret@fisk.tld" + Q + F
    assert u1.to_s(query=0, fragment=0) == "http://john:secret@fisk.tld:1983/some/path.ext"
    assert u1.to_s(scheme="ftp") == "ftp://john:secret@fisk.tld:1983/some/path.ext" + Q + F
    assert u1.to_s(port=123) == "http://john:secret@fisk.tld:123/some/path.ext" + Q + F
    assert u1.to_s(user=0, path="/internets") == "http://fisk.tld:1983/internets" + Q + F
    assert u1.to_s(query="grekisk_afton=yes") == (
        "http://john:secret@fisk.tld:1983/some/path.ext?grekisk_afton=yes" + F
    )
    assert u1.to_s(fragment="m0") == "http://john:secret@fisk.tld:1983/some/path.ext" + Q + "#m0"


def test_xml_vectors() -> None:
    from smisk.core import xml

    raw = 'Some <document> with strings & characters which should be "escaped"'
    escaped = (
        "Some &lt;document&gt; with strings &amp; characters which should be &quot;escaped&quot;"
    )
    assert xml.escape(raw) == escaped
    assert xml.unescape(escaped) == raw
    assert type(xml.escape('foo<bar>"baz"&')) is str
    assert type(xml.escape(b'foo<bar>"baz"&')) is bytes
    assert smisk.core.xml is sys.modules["smisk.core.xml"]
