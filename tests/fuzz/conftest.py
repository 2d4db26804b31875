"""Fixtures for the fuzz tests (shared ones live in tests/toolkit/fixtures.py)."""

from tests.toolkit.fixtures import *  # noqa: F401,F403
