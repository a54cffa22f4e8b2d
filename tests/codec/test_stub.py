"""smisk/_codec.pyi describes the built extension: mypy's stubtest compares the two."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest


def test_stub_matches_the_extension(c_codec: ModuleType) -> None:
    pytest.importorskip("mypy.stubtest")
    done = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "smisk._codec"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
