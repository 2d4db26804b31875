"""Pytest fixtures for the fake provider: import them from a conftest.py.

    from tests.toolkit.fakeprovider.fixtures import (  # noqa: F401
        fake_provider,
        fake_provider_session,
    )
"""

from collections.abc import Iterator

import pytest

from tests.toolkit.fakeprovider import FakeProvider, run_fake_provider


@pytest.fixture(scope="session")
def fake_provider_session() -> Iterator[FakeProvider]:
    """One fake provider for the whole test session (for other session-scoped fixtures)."""
    with run_fake_provider() as server:
        yield server


@pytest.fixture
def fake_provider(fake_provider_session: FakeProvider) -> Iterator[FakeProvider]:
    """The session's fake provider with an empty queue and no recorded requests."""
    fake_provider_session.reset()
    yield fake_provider_session
    fake_provider_session.reset()
