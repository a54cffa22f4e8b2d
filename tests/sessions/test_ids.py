"""Session ids: format, randomness, validation; malformed cookie ids never reach a store."""

from __future__ import annotations

import collections

import pytest

from smisk.sessions import InvalidSessionIdError, check_id, is_valid_id, new_id
from smisk.sessions.ids import ID_ALPHABET
from tests.sessions.conftest import Served

MALFORMED = [
    "../x",
    "../../etc/passwd",
    "",
    "a" * 10240,
    "A" * 32,  # outside the alphabet (upper case)
    "w" * 32,  # outside the alphabet (w-z)
    "a" * 31,
    "a" * 33,
    "a" * 31 + "/",
    "a" * 31 + "\x00",
    "a" * 32 + "\n",
    "%2e%2e%2fx" + "a" * 22,
    "\uff41" * 32,  # fullwidth letters: not ASCII
]


def test_new_ids_have_the_classic_format() -> None:
    ids = [new_id() for _ in range(2000)]
    assert all(len(i) == 32 and set(i) <= set(ID_ALPHABET) for i in ids)
    assert len(set(ids)) == len(ids)


def test_new_ids_use_the_whole_alphabet_evenly() -> None:
    counts = collections.Counter("".join(new_id() for _ in range(2000)))
    assert set(counts) == set(ID_ALPHABET)
    expected = 2000 * 32 / 32
    assert all(0.8 * expected < n < 1.2 * expected for n in counts.values())


@pytest.mark.parametrize("value", [*MALFORMED, None, 12, b"a" * 32, ["a" * 32]])
def test_malformed_ids_are_refused(value: object) -> None:
    assert not is_valid_id(value)
    with pytest.raises(InvalidSessionIdError):
        check_id(value)


def test_long_ids_are_not_echoed_whole() -> None:
    with pytest.raises(InvalidSessionIdError) as caught:
        check_id("a" * 10240)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_cookie_ids_never_reach_the_store(served: Served, value: str) -> None:
    browser = served.browser()
    reply = browser.get("/incr", cookie=f"SID={value}")
    assert reply.status == 200 and reply.body.startswith("1 ")
    assert browser.session_id != value and is_valid_id(browser.session_id)
    assert served.store.ids_seen() == {browser.session_id}
    assert served.store.names() == ["write"]


def test_duplicate_cookies_use_the_first_valid_id(served: Served) -> None:
    browser = served.browser()
    browser.get("/incr")
    good = browser.session_id
    reply = browser.get("/incr", cookie=f"SID=../x; SID={good}; SID={new_id()}")
    assert reply.body.startswith("2 ")
