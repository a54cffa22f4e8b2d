"""Fixtures over both codec twins.

Rules: the C twin is skipped only when it cannot be imported and SMISK_EXTENSION is not "1";
with SMISK_EXTENSION=1 a missing extension fails every C test instead of skipping it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

from smisk import _codec_py


def load_c_twin() -> ModuleType:
    """Import ``smisk._codec``; skip (or fail, under SMISK_EXTENSION=1) when it is missing."""
    try:
        return importlib.import_module("smisk._codec")
    except ImportError as error:
        if os.environ.get("SMISK_EXTENSION") == "1":
            pytest.fail(f"SMISK_EXTENSION=1 but smisk._codec does not import: {error}")
        pytest.skip(f"smisk._codec is not built: {error}")


@pytest.fixture(scope="session", params=["python", "c"])
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """Each twin in turn: every vector test runs against both."""
    return _codec_py if request.param == "python" else load_c_twin()


@pytest.fixture(scope="session")
def c_codec() -> ModuleType:
    return load_c_twin()


@pytest.fixture(scope="session")
def py_codec() -> ModuleType:
    return _codec_py
