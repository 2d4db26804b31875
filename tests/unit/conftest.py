"""Fixtures shared by the unit tests of several apps."""

import pytest

from tests.toolkit.cache_engine import fresh_cache_engine


@pytest.fixture
def memory_engine(settings):
    """This process's cache engine on a fresh in-process store."""
    with fresh_cache_engine(settings) as engine:
        yield engine
