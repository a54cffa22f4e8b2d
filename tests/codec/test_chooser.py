"""smisk.codec picks a twin: the environment switches, checked in fresh interpreters."""

from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType

import pytest

import smisk.codec
from smisk import _codec_py

# Run in a child: the choice is made once, at import. BLOCK makes the extension unimportable.
PRINT = "import smisk.codec as c; print(c.IMPLEMENTATION, c.pack.__module__)"
BLOCK = "import sys; sys.modules['smisk._codec'] = None; "


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SMISK_NO_EXTENSIONS", "SMISK_EXTENSION")
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=False
    )


def test_no_extensions_forces_python() -> None:
    done = run(PRINT, SMISK_NO_EXTENSIONS="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "python"


def test_extension_mandatory_gives_c(c_codec: ModuleType) -> None:
    done = run(PRINT, SMISK_EXTENSION="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["c", "smisk._codec"]


def test_default_prefers_c(c_codec: ModuleType) -> None:
    assert run(PRINT).stdout.split()[0] == "c"


def test_missing_extension_falls_back_to_python() -> None:
    done = run(BLOCK + PRINT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "python"


def test_missing_extension_is_an_error_when_mandatory() -> None:
    done = run(BLOCK + PRINT, SMISK_EXTENSION="1")
    assert done.returncode != 0
    assert "Error: import of smisk._codec halted" in done.stderr


def test_chooser_exports_every_codec() -> None:
    assert set(smisk.codec.__all__) == set(_codec_py.__all__) | {"IMPLEMENTATION"}
    assert smisk.codec.IMPLEMENTATION in ("c", "python")
    implementation = "python" if smisk.codec.IMPLEMENTATION == "python" else "c"
    expected_module = "smisk._codec_py" if implementation == "python" else "smisk._codec"
    assert smisk.codec.url_encode.__module__ == expected_module


@pytest.mark.skipif(
    os.environ.get("SMISK_EXTENSION") != "1", reason="only when the C twin is mandatory"
)
def test_this_run_uses_c() -> None:
    assert smisk.codec.IMPLEMENTATION == "c"


@pytest.mark.skipif(
    os.environ.get("SMISK_NO_EXTENSIONS") != "1", reason="only when Python is forced"
)
def test_this_run_uses_python() -> None:
    assert smisk.codec.IMPLEMENTATION == "python"
