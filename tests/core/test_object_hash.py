"""object_hash: hash() when possible, else the hash of a marshal dump, else hash(None)."""

from __future__ import annotations

import marshal

from smisk.core.hashing import object_hash


class Unhashable:
    __hash__ = None  # type: ignore[assignment]


class BrokenHash:
    def __hash__(self) -> int:
        raise RuntimeError("no")


def test_hashable_objects_use_hash() -> None:
    assert object_hash("abc") == hash("abc")
    assert object_hash(12) == hash(12)
    assert object_hash(None) == hash(None)
    thing = object()
    assert object_hash(thing) == hash(thing)


def test_containers_hash_by_content() -> None:
    assert object_hash({"a": 1}) == object_hash({"a": 1})
    assert object_hash({"a": 1}) != object_hash({"a": 2})
    assert object_hash([1, 2]) == hash(marshal.dumps([1, 2]))
    data = {"v": [1]}
    before = object_hash(data)
    data["v"].append(2)  # in-place mutation is noticed
    assert object_hash(data) != before


def test_unhashable_and_unmarshallable_collapse_to_hash_none() -> None:
    assert object_hash(Unhashable()) == hash(None)
    assert object_hash([Unhashable()]) == hash(None)
    assert object_hash(BrokenHash()) == hash(None)
