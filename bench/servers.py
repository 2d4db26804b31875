"""The servers a bench starts and always stops: the mock upstream, llmops and the LiteLLM proxy."""

import contextlib
import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from bench.common import CACHE, HOST, PYTHON, ROOT, free_port, server

LITELLM_VERSION = "1.108.7"
LITELLM_VENV = CACHE / "litellm-venv"
LITELLM_MASTER_KEY = "sk-bench-master"
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
# Each bench run gets its own database and Redis key prefixes, so two runs (yours and a
# colleague's) never re-point each other's profiles or flush each other's cache.
RUN_ID = f"{os.getpid()}"
_DATABASE_BASE = os.environ.get("BENCH_DATABASE_URL",
                                "postgres://postgres@127.0.0.1:5432/llmops_bench")
BENCH_DATABASE_URL = f"{_DATABASE_BASE}_{RUN_ID}"
_starts = itertools.count(1)

#: public model name -> mock model id (the id sets the mock's delay and stream pace)
MODELS = {
    "bench-d0": "mock-d0",
    "bench-d100": "mock-d100",
    "bench-stream2s": "mock-d0-n21-i100",  # 21 chunks 100 ms apart: a 2 s stream
}


@dataclass
class Target:
    """A running HTTP endpoint that speaks Chat Completions."""

    name: str
    base_url: str
    auth: str | None
    pid: int

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"


@contextlib.contextmanager
def mock_upstream(extra_args: list[str] | None = None) -> Iterator[Target]:
    """Run the mock upstream (bench/mock_upstream.py) on a free port, with `extra_args`."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [PYTHON, "-m", "bench.mock_upstream", "--port", str(port), *(extra_args or [])]
    with server("mock", argv, ready_url=f"{url}/health") as proc:
        yield Target("direct", url, None, proc.pid)


def _redis_prefix(start: int | None = None) -> str:
    return f"bench{RUN_ID}" + ("" if start is None else f"-{start}")


def drop_run_state() -> None:
    """Drop this run's database and Redis keys (called when a scenario ends)."""
    import psycopg
    import redis

    client = redis.Redis.from_url(BENCH_REDIS_URL)
    for key in client.scan_iter(match=f"*{_redis_prefix()}*", count=1000):
        client.delete(key)
    admin = urlparse(BENCH_DATABASE_URL)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{urlparse(BENCH_DATABASE_URL).path[1:]}" '
                     "WITH (FORCE)")


@contextlib.contextmanager
def bench_run() -> Iterator[None]:
    """Scope one scenario's state: its database and Redis keys go when it ends."""
    try:
        yield
    finally:
        drop_run_state()


def llmops_env(*, semantic_cache: bool, workers: int, start: int = 0) -> dict[str, str]:
    """Return the environment of a production-like llmops server for benches.

    `start` numbers the server within the run: each start gets fresh Redis key prefixes (an
    empty semantic cache, fresh throttle and cooldown state) without flushing anything shared.
    """
    prefix = _redis_prefix(start)
    env = {
        "DJANGO_SETTINGS_MODULE": "llmops.settings.base",
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": BENCH_DATABASE_URL,
        "REDIS_URL": BENCH_REDIS_URL,
        "CACHE_KEY_PREFIX": f"{prefix}-llmops",
        "SEMCACHE_KEY_PREFIX": f"{prefix}-semcache",
        "ROUTING_REDIS_PREFIX": f"{prefix}-routing",
        "ENABLE_SEMANTIC_CACHE": "true" if semantic_cache else "false",
        # Budgets on the full path: every key gets a (generous) daily and monthly default.
        "DEFAULT_DAILY_BUDGET": "1000000",
        "DEFAULT_MONTHLY_BUDGET": "10000000",
        # The default 6000/min per key would throttle a throughput bench; keep the throttle on
        # with a 1 s window (DRF keeps one timestamp per request of the window in Redis).
        "API_KEY_RATE_LIMIT": "1000000/s",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "WEB_CONCURRENCY": str(workers),
    }
    if workers > 1:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(CACHE / "prometheus_multiproc")
    else:
        env["PROMETHEUS_MULTIPROC_DIR"] = ""
    return env


def prepare_llmops(mock: Target, *, reset: bool = True) -> str:
    """Create/migrate this run's database, point profiles at `mock`; return a fresh API key."""
    return setup_llmops(mock, MODELS, reset=reset)["key"]


def setup_llmops(mock: Target, models: dict[str, str], *, reset: bool = True,
                 profile_fields: dict[str, dict] | None = None,
                 teams: list[str] | None = None) -> dict:
    """Create/migrate this run's database, point `models` (public name -> mock model id, fields
    overridden by `profile_fields`) at `mock`; return {"key": ..., "keys": {team: key}}."""
    env = {**os.environ, **llmops_env(semantic_cache=False, workers=1)}
    argv = [PYTHON, "-m", "bench.llmops_setup", "--mock-url", mock.base_url,
            "--models", *(f"{name}={upstream}" for name, upstream in models.items()),
            "--profile-fields", json.dumps(profile_fields or {}, default=str),
            "--teams", *(teams or [])]
    if reset:
        argv.append("--reset")
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                          timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"llmops setup failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def llmops(key: str, *, semantic_cache: bool, workers: int, name: str = "llmops",
           extra_env: dict[str, str] | None = None) -> Iterator[Target]:
    """Run llmops with the production launcher (python -m llmops.serve) on a free port.

    `extra_env` overrides the bench environment (A/B experiments: bench/ab.py).
    """
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [PYTHON, "-m", "llmops.serve", "--host", HOST, "--port", str(port),
            "--workers", str(workers)]
    env = {**llmops_env(semantic_cache=semantic_cache, workers=workers, start=next(_starts)),
           **(extra_env or {})}
    with server(name, argv, env=env, ready_url=f"{url}/readyz", ready_timeout=300) as proc:
        yield Target(name, url, f"Bearer {key}", proc.pid)


def litellm_installed() -> bool:
    return (LITELLM_VENV / "bin" / "litellm").exists()


def install_litellm() -> None:
    """Create bench/.cache/litellm-venv with the pinned LiteLLM proxy (once)."""
    if litellm_installed():
        return
    subprocess.run(["python3", "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet",
                    f"litellm[proxy]=={LITELLM_VERSION}"], check=True)


def _litellm_config(mock: Target) -> Path:
    lines = ["model_list:"]
    for name, upstream in MODELS.items():
        lines += [f"  - model_name: {name}",
                  "    litellm_params:",
                  f"      model: openai/{upstream}",
                  f"      api_base: {mock.base_url}/v1",
                  "      api_key: sk-mock"]
    lines += ["general_settings:", f"  master_key: {LITELLM_MASTER_KEY}"]
    path = CACHE / f"litellm-config-{RUN_ID}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def litellm(mock: Target, *, workers: int) -> Iterator[Target]:
    """Run the LiteLLM proxy (its own venv, no database) routing every bench model to `mock`."""
    install_litellm()
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(_litellm_config(mock)),
            "--host", HOST, "--port", str(port), "--num_workers", str(workers)]
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
           "DATABASE_URL": None, "REDIS_URL": None, "PYTHONPATH": None}
    with server("litellm", argv, env=env, ready_url=f"{url}/health/liveliness",
                ready_timeout=300) as proc:
        yield Target("litellm", url, f"Bearer {LITELLM_MASTER_KEY}", proc.pid)
