"""Fixtures every suite may use (``tests/support/fixtures.py``)."""

pytest_plugins = ["tests.support.fixtures"]
