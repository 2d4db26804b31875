"""Gateway subprocesses: the production server (`python -m llmops.serve`) on a free port, or
Django's own WSGI server (`manage.py runserver`, `server="wsgi"`).

A test that must kill a gateway (SIGKILL), point it at a proxy, give it its own Redis, or serve
it over WSGI runs it here rather than in-process. The process uses production settings
(`llmops.settings.base`) and the test database, so rows the test creates (with
`transactional_db`) are visible to it.

    with GatewayProcess(database_url=gateway_database_url(), env={...}) as gateway:
        httpx.post(f"{gateway.url}/v1/chat/completions", ...)
        gateway.kill()  # SIGKILL, no cleanup
"""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.toolkit.net import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent.parent


def gateway_database_url(*, host: str | None = None, port: int | None = None) -> str:
    """Return a DATABASE_URL for the database the running test uses (pytest-django's test DB).

    `host`/`port` override where PostgreSQL is reached (e.g. a TcpProxy in front of it).
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (f"postgres://{user}{password}@{host or db.get('HOST') or '127.0.0.1'}:"
            f"{port or db.get('PORT') or 5432}/{db['NAME']}")


def is_postgres() -> bool:
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


BASE_ENV = {
    "DJANGO_SETTINGS_MODULE": "llmops.settings.base",
    "DEBUG": "false",
    "SECRET_KEY": "reliability-tests-secret-key-" + "x" * 40,
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # Off unless a test turns it on: the embedder costs seconds of start-up and memory.
    "ENABLE_SEMANTIC_CACHE": "false",
    "REDIS_URL": "",
    "SEMCACHE_REDIS_URL": "",
    "ROUTING_REDIS_URL": "",
    "CELERY_BROKER_URL": "",
    "LOG_LEVEL": "WARNING",
    "ROUTING_BACKOFF_BASE_SECONDS": "0.01",
    "ROUTING_BACKOFF_MAX_SECONDS": "0.05",
    "PROVIDER_CONNECT_TIMEOUT_SECONDS": "1",
    "CONN_MAX_AGE": "0",
}


SERVERS = ("asgi", "wsgi")


class GatewayProcess:
    def __init__(self, *, database_url: str, env: dict[str, str] | None = None,
                 port: int | None = None, server: str = "asgi"):
        if server not in SERVERS:
            raise ValueError(f"server must be one of {SERVERS}, not {server!r}")
        self.server = server
        self.port = port or free_port()
        self.env = {**os.environ, **BASE_ENV, "DATABASE_URL": database_url, **(env or {})}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="llmops-gateway-", suffix=".log",
                                                delete=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """Return the command line that serves the gateway on `port`."""
        if self.server == "wsgi":
            # Django's development server: WSGI (llmops.wsgi), a thread per request.
            return [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}",
                    "--noreload", "--skip-checks"]
        return [sys.executable, "-m", "llmops.serve", "--host", "127.0.0.1", "--port",
                str(self.port), "--workers", "1"]

    def start(self, *, timeout: float = 90.0) -> "GatewayProcess":
        return self.launch().wait_ready(timeout=timeout)

    def launch(self) -> "GatewayProcess":
        """Start the process without waiting (several start faster side by side)."""
        self._process = subprocess.Popen(
            self.command(),
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, *, timeout: float = 90.0) -> "GatewayProcess":
        """Block until /healthz answers; stop the process and raise with its output if not."""
        try:
            wait_for_http(f"{self.url}/healthz", timeout=timeout, alive=self.alive)
        except Exception:
            self.stop()
            raise RuntimeError(f"gateway did not start:\n{self.output()[-4000:]}") from None
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no settlement, no goodbye."""
        if self.alive():
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def client(self, key: str, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"},
                            timeout=kwargs.pop("timeout", 30), **kwargs)

    def __enter__(self) -> "GatewayProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
