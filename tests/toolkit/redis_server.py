"""A private redis-server on its own port that a test may stop and restart.

Fault tests must never stop or flush the shared Redis on 6379; they start this one instead.
"""

import shutil
import subprocess
import tempfile

from tests.toolkit.net import free_port, wait_for_port


def redis_server_available() -> bool:
    return shutil.which("redis-server") is not None


class PrivateRedis:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._dir = tempfile.mkdtemp(prefix="llmops-redis-")
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        """Start (or restart) the server on the same port, empty."""
        if self._process is not None and self._process.poll() is None:
            return self
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self._dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
