"""deploy/nginx/llmops.conf, as shipped, in front of two gateway replicas (Debian's nginx, run
unprivileged on free loopback ports):

- a stream's first chunks reach the client while the model is still stalled mid-answer
  (nothing buffers it);
- requests are spread over both replicas and keep flowing when one is killed;
- /metrics is not served through the proxy, and /admin/ and /dashboard/ only to the proxy's
  own host;
- the replica sees the client's address (forwarded by nginx and trusted from it only), and a
  client cannot forge one: shown through the replica's /metrics allowlist on a copy of the
  config that lets /metrics through.

Clients connect from other loopback addresses (127.0.0.2, 127.0.0.3) than nginx's own.
"""

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest

from tests.toolkit.fakeprovider import Behavior
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url
from tests.toolkit.net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "llmops.conf"
CLIENT, OTHER = "127.0.0.2", "127.0.0.3"
NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx",) if Path(path).exists()), None)

pytestmark = pytest.mark.slow


def client(address: str, **kwargs) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10,
                        **kwargs)


class Nginx:
    """nginx with a main config of its own around the site file, in a temporary prefix."""

    def __init__(self, site: str, port: int):
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="llmops-nginx-"))
        (self.dir / "logs").mkdir()
        (self.dir / "site.conf").write_text(site)
        (self.dir / "nginx.conf").write_text(
            "daemon off;\nworker_processes 1;\npid nginx.pid;\nerror_log logs/error.log;\n"
            "events { worker_connections 256; }\n"
            "http {\n  access_log logs/access.log;\n  client_body_temp_path tmp_body;\n"
            "  proxy_temp_path tmp_proxy;\n  include site.conf;\n}\n")
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Nginx":
        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), "-e",
             str(self.dir / "logs" / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=10, alive=lambda: self.process.poll() is None)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def site_for(ports: list[int], listen: int, *, metrics_through: bool = False) -> str:
    """The shipped site with this test's addresses (and, for the forwarding check only, the
    /metrics block removed)."""
    text = SITE.read_text()
    text = text.replace("server 127.0.0.1:8001", f"server 127.0.0.1:{ports[0]}")
    text = text.replace("server 127.0.0.1:8002", f"server 127.0.0.1:{ports[1]}")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    if metrics_through:
        text = text.replace("location = /metrics { return 404; }", "")
    assert str(ports[0]) in text and str(listen) in text
    return text


@pytest.fixture(scope="module")
def nginx_binary():
    if NGINX is None:
        pytest.skip("nginx is not installed (.ci/system-packages installs Debian's)")


@pytest.fixture
def replicas(nginx_binary, transactional_db, fake_profile, monkeypatch):
    monkeypatch.setenv("NGINX_TEST_PROVIDER_KEY", "sk-nginx-test-provider-key")
    fake_profile("proxied", upstream="fake-ok", api_key_env="NGINX_TEST_PROVIDER_KEY")
    env = {"METRICS_ALLOWED_IPS": CLIENT, "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    started = [GatewayProcess(database_url=gateway_database_url(), env=env).launch()
               for _ in range(2)]
    try:
        for replica in started:
            replica.wait_ready(timeout=120)
        yield started
    finally:
        for replica in started:
            replica.stop()


def chat(http: httpx.Client, url: str, key: str, **extra) -> httpx.Response:
    return http.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                     json={"model": "proxied", "max_tokens": 32,
                           "messages": [{"role": "user", "content": f"hi {uuid.uuid4().hex}"}],
                           **extra})


def test_nginx_in_front_of_two_replicas(replicas, api_key, fake_provider):
    ports = [replica.port for replica in replicas]
    listen = free_port()
    with Nginx(site_for(ports, listen), listen) as nginx, client(CLIENT) as http:
        # Plain requests go through, spread over both replicas.
        for _ in range(4):
            assert chat(http, nginx.url, api_key.key).status_code == 200
        fake_provider.wait_for_requests(4)

        # A stream: the model sends two chunks, then stalls for 20 s. The client reads them
        # while it stalls (httpx's 10 s read timeout would fire if nginx held them back).
        fake_provider.enqueue(Behavior(stall_after=2, stall_seconds=20, words=12))
        with http.stream("POST", f"{nginx.url}/v1/chat/completions",
                         headers={"Authorization": f"Bearer {api_key.key}"},
                         json={"model": "proxied", "stream": True, "max_tokens": 32,
                               "messages": [{"role": "user", "content": "stream please"}]},
                         ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            seen = ""
            for text in response.iter_text():
                seen += text
                if seen.count('"content"') >= 2:
                    break
            assert seen.count('"content"') >= 2

        # Private paths.
        assert http.get(f"{nginx.url}/metrics").status_code == 404
        assert http.get(f"{nginx.url}/admin/").status_code == 403
        assert http.get(f"{nginx.url}/dashboard/").status_code == 403
        with client("127.0.0.1") as local:
            assert local.get(f"{nginx.url}/admin/", follow_redirects=False).status_code == 302

        # One replica dies: the other serves everything.
        replicas[0].kill()
        for _ in range(4):
            assert chat(http, nginx.url, api_key.key).status_code == 200

    # The client's address is forwarded and trusted only from the proxy: the replica lets
    # /metrics through to CLIENT alone (METRICS_ALLOWED_IPS).
    survivor = replicas[1]
    listen = free_port()
    with Nginx(site_for([survivor.port, survivor.port], listen, metrics_through=True),
               listen) as nginx:
        with client(CLIENT) as http:
            assert http.get(f"{nginx.url}/metrics").status_code == 200
        with client(OTHER) as http:
            assert http.get(f"{nginx.url}/metrics").status_code == 403
            forged = {"X-Forwarded-For": CLIENT}
            assert http.get(f"{nginx.url}/metrics", headers=forged).status_code == 403
            # Straight to the replica, a forged header from an untrusted peer counts for
            # nothing either.
            assert http.get(f"{survivor.url}/metrics", headers=forged).status_code == 403
