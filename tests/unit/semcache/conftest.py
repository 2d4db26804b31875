"""Fixtures for the semantic cache's unit tests (`memory_engine` is in tests/unit/conftest.py)."""

from tests.unit.semcache.helpers import make_ctx  # noqa: F401
