"""The Procfile (web, worker, beat) as an operator runs it: `honcho start` from the repository
root with a broker, until the web process answers /healthz and the worker and beat are up, then
stopped as honcho stops them (SIGINT: every process exits)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.toolkit.gateway_process import BASE_ENV
from tests.toolkit.net import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
HONCHO = Path(sys.executable).parent / "honcho"

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_honcho_runs_web_worker_and_beat(search_redis, tmp_path):
    if not HONCHO.exists():
        pytest.skip("honcho (requirements-dev.txt) is not installed")
    port = free_port()
    env = {
        **os.environ, **BASE_ENV,
        # The virtualenv's python and celery, as an activated virtualenv gives them.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'procfile.sqlite3'}",
        "CELERY_BROKER_URL": search_redis.url.rsplit("/", 1)[0] + "/5",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "honcho.log"
    with open(log, "w") as out:
        # -e /dev/null: no developer's .env; -p: honcho hands web its PORT.
        honcho = subprocess.Popen(
            [str(HONCHO), "start", "-e", "/dev/null", "-p", str(port), "--no-colour"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=120,
                          alive=lambda: honcho.poll() is None)
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {
                "status": "ok"}
            deadline = time.monotonic() + 60
            while not all(marker in log.read_text() for marker in ("celery@", "beat: Starting")):
                assert honcho.poll() is None, log.read_text()[-4000:]
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(0.2)
        finally:
            if honcho.poll() is None:
                honcho.send_signal(signal.SIGINT)
            try:
                honcho.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
                honcho.wait(timeout=10)
    text = log.read_text()
    for name in ("web.1", "worker.1", "beat.1"):
        assert f"{name} started" in text and f"{name} stopped" in text, text[-4000:]
    # honcho stopped every process it started: nothing listens on the web port any more.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
