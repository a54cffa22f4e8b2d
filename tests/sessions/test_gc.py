"""FileSessionStore GC: expired files of this store go; everything else in the directory stays."""

from __future__ import annotations

import os
import time
from pathlib import Path

from smisk.sessions import FileSessionStore, new_id

OLD = time.time() - 10_000  # an mtime far beyond any TTL used here


def make_old(path: Path | str) -> None:
    os.utime(path, (OLD, OLD))


def populate(directory: Path) -> tuple[FileSessionStore, dict[str, bool]]:
    """A store with expired and fresh sessions among strangers; name -> should survive GC."""
    store = FileSessionStore(str(directory / "smisk-sess."), ttl=900, gc_probability=0)
    expected: dict[str, bool] = {}
    for _ in range(3):
        old, fresh = new_id(), new_id()
        store.write(old, {"old": True})
        store.write(fresh, {"old": False})
        make_old(store.path(old))
        expected[f"smisk-sess.{old}"], expected[f"smisk-sess.{fresh}"] = False, True
    orphan = directory / f"smisk-sess.{new_id()}.k2j_x9a1.tmp"  # a write killed midway
    orphan.write_bytes(b'{"to')
    make_old(orphan)
    expected[orphan.name] = False
    strangers = [
        "smisk-sess.",  # the bare prefix
        "smisk-sess",  # a prefix of the prefix (the classic GC removed it)
        "smisk-ses",
        f"smisk-sess.{new_id()}x",  # not an id
        f"smisk-sess.{new_id()[:31]}",
        f"other.{new_id()}",  # another prefix
        f"smisk-sess.other.{new_id()}",  # a longer prefix in the same directory
        f"xsmisk-sess.{new_id()}",
        "notes.txt",
    ]
    for name in strangers:
        (directory / name).write_text("not a session")
        make_old(directory / name)
        expected[name] = True
    (directory / f"smisk-sess.{new_id()}.d").mkdir()  # a directory, even with an id-like name
    os.symlink("/etc/hostname", directory / f"smisk-sess.{new_id()}")  # a link is not ours
    return store, expected


def test_gc_removes_expired_files_and_nothing_else(tmp_path: Path) -> None:
    store, expected = populate(tmp_path)
    before = set(os.listdir(tmp_path))
    assert store.collect() == 4
    after = set(os.listdir(tmp_path))
    assert before - after == {name for name, keep in expected.items() if not keep}
    assert {name for name, keep in expected.items() if keep} <= after
    assert len(after) == len(before) - 4


def test_gc_runs_from_read_with_its_probability(tmp_path: Path) -> None:
    store, expected = populate(tmp_path)
    live = new_id()
    store.write(live, 1)
    store.gc_probability = 1.0
    assert store.read(live) == 1
    assert not any(name in os.listdir(tmp_path) for name, keep in expected.items() if not keep)


def test_gc_never_runs_with_probability_zero(tmp_path: Path) -> None:
    store, expected = populate(tmp_path)
    live = new_id()
    store.write(live, 1)
    for _ in range(50):
        store.read(live)
    assert set(expected) <= set(os.listdir(tmp_path))


def test_gc_of_a_missing_directory(tmp_path: Path) -> None:
    assert FileSessionStore(str(tmp_path / "nowhere" / "s.")).collect() == 0
