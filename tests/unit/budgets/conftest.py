"""Fixtures for budget tests."""

import pytest

from llmops.principal import Principal
from tests.unit.budgets.factories import principal_of


@pytest.fixture
def principal(api_key) -> Principal:
    """The Principal of the default test key (team-a / alice)."""
    return principal_of(api_key.api_key)
