"""Shared fixtures: a live ASGI gateway, API keys, model profiles, the openai SDK client."""

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@dataclass
class LiveGateway:
    url: str

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test databases; before they are dropped, the connections other threads
    opened are closed (the gateway's database pool, and asgiref's shared thread that async
    tests' `sync_to_async` calls run in): PostgreSQL refuses to drop a database that a session
    is still connected to."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    from llmops.db import close_pool

    close_pool()
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)


@pytest.fixture(scope="session")
def gateway_server(django_db_setup, django_db_blocker) -> Iterator[LiveGateway]:
    """Serve the real ASGI application with uvicorn on 127.0.0.1 for the whole session.

    It runs in this process (so it sees the test database and settings overrides); tests that
    use it must also use `transactional_db`, which is what `live_gateway` does.
    """
    import uvicorn

    port = _free_port()
    config = uvicorn.Config("llmops.asgi:application", host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-gateway", daemon=True)
    thread.start()
    # Generous: importing the app loads the embedding model, slow on a loaded 2-core machine.
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live gateway did not start")
        time.sleep(0.02)
    yield LiveGateway(url=f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)
    from llmops.db import close_pool

    # Let pytest-django drop the PostgreSQL test database: no pool connection may stay open.
    close_pool()


@pytest.fixture
def live_gateway(gateway_server, transactional_db) -> LiveGateway:
    """The session's live gateway, with database access for this test (flushed after)."""
    return gateway_server


SIMULATED_PROFILES = {
    # name: (tier, input price, output price) — simulated, priced like real models
    "simulated-efficient": ("efficient", "0.00000015", "0.0000006"),
    "simulated-standard": ("standard", "0.0000004", "0.0000016"),
    "simulated-premium": ("premium", "0.0000025", "0.00001"),
}


@pytest.fixture
def simulated_profiles(db):
    """Create the three simulated model profiles; return them by name."""
    from routing.models import ModelProfile
    from routing.selectors import invalidate_snapshot

    profiles = {}
    for name, (tier, price_in, price_out) in SIMULATED_PROFILES.items():
        profiles[name] = ModelProfile.objects.create(
            name=name, provider="simulated", upstream_model=name, tier=tier,
            input_price_per_token=price_in, output_price_per_token=price_out,
            context_window=128000, max_output_tokens=4096, options={"chunk_interval_ms": 1},
        )
    invalidate_snapshot()
    yield profiles
    invalidate_snapshot()


@pytest.fixture
def local_embedding_profile(db):
    """The gateway's own embedding model `llmops-minilm`, as `load_default_models` installs it."""
    from routing.defaults import EMBEDDING_PROFILES, LOCAL_EMBEDDING_MODEL
    from routing.models import ModelProfile
    from routing.selectors import invalidate_snapshot

    fields = dict(next(p for p in EMBEDDING_PROFILES if p["name"] == LOCAL_EMBEDDING_MODEL))
    profile = ModelProfile.objects.create(**fields)
    invalidate_snapshot()
    yield profile
    invalidate_snapshot()


@pytest.fixture
def make_api_key(db):
    """Return a factory: make_api_key(team="t", user="u", tier="standard") -> IssuedKey."""
    from llmops.services import api_key_create

    def make(team: str = "team-a", user: str = "alice", tier: str = "standard", **kwargs):
        return api_key_create(team_name=team, username=user, tier=tier, **kwargs)

    return make


@pytest.fixture
def api_key(make_api_key):
    """An API key (IssuedKey: .key is the secret, .api_key the row) for team-a/alice."""
    return make_api_key()


@pytest.fixture
def openai_client(live_gateway, api_key, simulated_profiles):
    """The official openai SDK pointed at the live gateway, authenticated with `api_key`."""
    import openai

    return openai.OpenAI(base_url=live_gateway.api_base, api_key=api_key.key, max_retries=0,
                         timeout=30)


from tests.toolkit.fakeprovider.fixtures import fake_provider, fake_provider_session  # noqa: E402,F401


@pytest.fixture
def fake_profile(db, fake_provider):  # noqa: F811
    """Return a factory for OpenAI-compatible profiles served by the fake provider.

    fake_profile("m1", upstream="fake-error-500", fallbacks=["m2"]) -> ModelProfile
    """
    from routing.models import ModelProfile
    from routing.selectors import invalidate_snapshot

    def make(name: str, *, upstream: str = "fake-ok", fallbacks: list[str] | None = None,
             base_url: str | None = None, **fields):
        defaults = dict(
            provider="openai_compatible", upstream_model=upstream,
            base_url=base_url or fake_provider.base_url, tier="standard",
            input_price_per_token="0.000001", output_price_per_token="0.000002",
            context_window=32000, max_output_tokens=1000,
        )
        defaults.update(fields)
        profile = ModelProfile.objects.create(name=name, fallbacks=fallbacks or [], **defaults)
        invalidate_snapshot()
        return profile

    yield make
    invalidate_snapshot()


@pytest.fixture(autouse=True)
def _celery_join_allowed() -> Iterator[None]:
    """Start every test outside any task, as far as Celery's join guard is concerned.

    Eager tasks run under `denied_join_result()`, which saves and restores one process-global
    flag. Two eager tasks overlapping in different threads (the live gateway's on_commit tasks
    beside the test's own) can restore it in the wrong order and leave it stuck "inside a task",
    after which every later test's `result.get()` raises "Never call result.get() within a task".
    """
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)
    yield


@pytest.fixture(scope="session")
def search_redis():
    """A private Redis-compatible server with a query engine (Valkey 9 + RediSearch, from the
    test-only wheels in requirements-dev.txt), one per session; skipped, with the reason,
    where it cannot start."""
    from tests.toolkit.redis_server import PrivateRedis, search_server_unavailable

    reason = search_server_unavailable()
    if reason:
        pytest.skip(reason)
    with PrivateRedis(search=True) as server:
        yield server
