"""The build identifier: a URN naming this build (``SMISK_BUILD_ID`` overrides it)."""

from __future__ import annotations

import os

from smisk._version import __version__


def build_urn() -> str:
    """Return the build URN: ``SMISK_BUILD_ID`` if set, else one derived from the version."""
    override = os.environ.get("SMISK_BUILD_ID")
    if override:
        return override
    return f"urn:smisk:release:{__version__}" + os.environ.get("SMISK_BUILD_ID_SUFFIX", "")


__build__ = build_urn()
