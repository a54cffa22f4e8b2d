"""Fixtures shared by the suites that run the test handlers (import them into a conftest)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import handlers


@pytest.fixture(autouse=True)
def _clean_handler_events() -> Iterator[None]:
    handlers.EVENTS.clear()
    yield
    handlers.EVENTS.clear()
    handlers.reset_gates()


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for unix sockets (tmp_path can exceed the 108-byte sun_path limit)."""
    path = Path(tempfile.mkdtemp(prefix="smisk-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
