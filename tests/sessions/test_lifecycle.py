"""The whole session lifecycle, for every store (memory, file, redis) with sync and async services."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from smisk.sessions import (
    CookiePolicy,
    FileSessionStore,
    MemorySessionStore,
    is_valid_id,
    new_id,
)
from tests.sessions.apps import AsyncApp
from tests.sessions.conftest import Served, new_app, serving, spy


def test_untouched_session_costs_nothing(served: Served) -> None:
    reply = served.browser().get("/none")
    assert (reply.status, reply.body, reply.set_cookie) == (200, "untouched", None)
    assert served.store.calls == []


def test_reading_a_new_session_issues_no_id(served: Served) -> None:
    reply = served.browser().get("/get")
    assert (reply.status, reply.body, reply.set_cookie) == (200, "null", None)
    assert served.store.calls == []  # nothing read (no cookie) and nothing written (no data)


def test_new_session_gets_a_cookie_and_is_written(served: Served) -> None:
    browser = served.browser()
    reply = browser.get("/incr")
    assert reply.status == 200 and reply.body.startswith("1 ")
    assert reply.set_cookie is not None
    attributes = [part.strip() for part in reply.set_cookie.split(";")]
    assert attributes[1:] == ["Path=/", "HttpOnly", "SameSite=Lax"]
    assert is_valid_id(browser.session_id)
    assert served.store.calls == [("write", browser.session_id, {"n": 1})]


def test_session_persists_across_requests(served: Served) -> None:
    browser = served.browser()
    for expected in range(1, 6):
        reply = browser.get("/incr")
        assert reply.body.startswith(f"{expected} ")
    assert reply.set_cookie is None  # the id was sent once
    assert json.loads(browser.get("/get").body) == {"n": 5}


def test_unchanged_session_is_refreshed_not_written(served: Served) -> None:
    browser = served.browser()
    browser.get("/incr")
    served.store.calls.clear()
    assert json.loads(browser.get("/get").body) == {"n": 1}
    assert served.store.names() == ["read", "refresh"]


def test_in_place_mutation_is_written(served: Served) -> None:
    browser = served.browser()
    browser.get("/init")
    for _ in range(3):
        assert browser.get("/append").status == 200
    assert json.loads(browser.get("/get").body) == {"items": [0, 1, 2]}
    assert served.store.names().count("write") == 4


def test_setting_none_destroys_and_expires_the_cookie(served: Served) -> None:
    browser = served.browser()
    browser.get("/incr")
    old = browser.session_id
    served.store.calls.clear()
    reply = browser.get("/destroy")
    assert reply.set_cookie is not None and "Max-Age=0" in reply.set_cookie
    assert served.store.names() == ["read", "destroy"]  # destroyed, not re-created
    assert browser.cookie is None
    reply = browser.get("/get", cookie=f"SID={old}")
    assert reply.body == "null"  # the old id is gone for good
    assert served.store.calls[-1] == ("read", old)


def test_unknown_well_formed_id_is_never_adopted(served: Served) -> None:
    planted = new_id()  # valid format, but never issued by the server
    browser = served.browser()
    browser.cookie = f"SID={planted}"
    reply = browser.get("/incr")
    assert reply.body.startswith("1 ")
    assert browser.session_id != planted and is_valid_id(browser.session_id)
    assert ("read", planted) in served.store.calls
    assert all(call[1] != planted for call in served.store.calls if call[0] == "write")


def test_session_id_is_stable_and_written(served: Served) -> None:
    browser = served.browser()
    first = browser.get("/id")
    assert first.body == browser.session_id and first.set_cookie is not None
    second = browser.get("/id")
    assert second.body == first.body and second.set_cookie is None


def test_regenerating_the_id_keeps_the_data(served: Served) -> None:
    browser = served.browser()
    browser.get("/incr")
    old = browser.session_id
    reply = browser.get("/login")
    assert reply.body == browser.session_id != old
    assert ("destroy", old) in served.store.calls
    assert json.loads(browser.get("/get").body) == {"n": 1}


def test_session_id_setter_validates(served: Served) -> None:
    browser = served.browser()
    for bad in ["../x", "", "A" * 32, "x" * 31, "w" * 32, "0" * 33]:
        assert browser.get(f"/setid?id={bad}").body == "refused"
    good = new_id()
    assert browser.get(f"/setid?id={good}").body == "adopted"
    assert browser.session_id == good
    assert served.store.ids_seen() == {good}


def test_new_id_after_output_began_is_a_clear_error(served: Served) -> None:
    reply = served.browser().get("/late")
    assert reply.body.startswith("begun;output has already begun: too late to send a new")
    assert reply.set_cookie is None
    assert served.store.calls == []


def test_secure_cookie_over_https(served: Served) -> None:
    reply = served.browser(HTTPS="on").get("/incr")
    assert reply.set_cookie is not None and "; Secure" in reply.set_cookie


def test_unserializable_data_is_a_clear_500(served: Served) -> None:
    reply = served.browser().get("/datetime")
    assert reply.status == 500 and "not JSON-serializable" in reply.body
    assert reply.set_cookie is None  # nothing was saved: no cookie for it


def test_async_service_must_load_first(store_kind: str, make_store: Any, sockdir: Path) -> None:
    with serving(AsyncApp(), spy(make_store(store_kind)), sockdir) as running:
        reply = running.browser().get("/unloaded")
        assert reply.status == 200
        assert reply.body.startswith("in an async service(), call `await request.load_session()`")
        assert running.store.calls == []


class ThreadRecordingStore(FileSessionStore):
    """A FileSessionStore that notes the thread each of its methods runs in."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self.threads: list[int] = []

    def read(self, session_id: str) -> Any:
        self.threads.append(threading.get_ident())
        return super().read(session_id)

    def write(self, session_id: str, data: Any) -> None:
        self.threads.append(threading.get_ident())
        super().write(session_id, data)

    def refresh(self, session_id: str) -> None:
        self.threads.append(threading.get_ident())
        super().refresh(session_id)


def test_file_io_never_runs_on_the_loop(mode: str, tmp_path: Path, sockdir: Path) -> None:
    store = ThreadRecordingStore(str(tmp_path / "s."))
    with serving(new_app(mode), store, sockdir) as running:
        browser = running.browser()
        for _ in range(3):
            browser.get("/incr")
        browser.get("/get")
        loop_thread = running.server._thread.ident
    assert len(store.threads) == 7 and loop_thread not in store.threads


def test_cookie_policy_from_the_application(mode: str, sockdir: Path) -> None:
    app = new_app(mode)
    app.session_cookie = CookiePolicy(  # type: ignore[attr-defined]
        path="/app", domain="example.org", secure=True, same_site="Strict", max_age=3600
    )
    with serving(app, MemorySessionStore(), sockdir) as running:
        reply = running.browser().get("/incr")
    assert reply.set_cookie is not None
    attributes = [part.strip() for part in reply.set_cookie.split(";")]
    assert attributes[1:4] == ["Domain=example.org", "Path=/app", "Max-Age=3600"]
    assert attributes[5:] == ["Secure", "HttpOnly", "SameSite=Strict"]


def test_cookie_policy_from_the_store(sockdir: Path) -> None:
    store = MemorySessionStore(name="sess", cookie=CookiePolicy(http_only=False, same_site=None))
    with serving(new_app("sync"), store, sockdir) as running:
        reply = running.browser().get("/incr")
    assert reply.set_cookie is not None
    assert reply.set_cookie.startswith("sess=") and reply.set_cookie.endswith("; Path=/")
