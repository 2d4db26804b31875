"""A real Prometheus scrapes the live gateway: every dashboard and alert query returns series.

The test starts Debian's `prometheus` on 127.0.0.1 with the shipped scrape config and alert
rules (1 s scrape and evaluation intervals), sends a little traffic through the gateway, then
asks Prometheus for every PromQL expression of monitoring/grafana/dashboards/llmops.json and
monitoring/prometheus/alerts.yml.
"""

import json
import re
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import yaml

from tests.e2e.observability.conftest import binary_or_skip

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "monitoring/grafana/dashboards/llmops.json"
PROMETHEUS_YML = ROOT / "monitoring/prometheus/prometheus.yml"
ALERTS_YML = ROOT / "monitoring/prometheus/alerts.yml"

# What Grafana substitutes before it sends a query (values fit a test that lasts seconds).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1m", "$__interval": "1s",
                     "$model": ".*", "$team": ".*"}


def dashboard_expressions() -> list[tuple[str, str]]:
    """Return (panel title, expression) for every target of every panel."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(metric, label) is answered from the metric's series.
            metric = re.match(r"label_values\((\w+),", variable["definition"]).group(1)
            out.append((f"variable {variable['name']}", metric))
    return out


def grafana_substitute(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    return expr


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS_YML.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


_COMPARISON = re.compile(r"(>=|<=|==|!=|>|<)(?!\s*bool)")


def as_bool_comparison(expr: str) -> str:
    """Return `expr` with its comparisons turned into `bool` ones (label matchers untouched).

    An alert expression filters: it returns nothing while the alert is quiet. With `bool`, the
    same expression returns 0/1 for every input series, so "returns a series" proves that the
    metrics it compares exist.
    """
    out, depth, quoted = [], 0, False
    index = 0
    while index < len(expr):
        char = expr[index]
        if char == '"' and (index == 0 or expr[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "{":
            depth += 1
        elif not quoted and char == "}":
            depth -= 1
        elif not quoted and depth == 0:
            match = _COMPARISON.match(expr, index)
            if match:
                out.append(f"{match.group(1)} bool")
                index = match.end()
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def prometheus(tmp_path, live_gateway):
    """Start Prometheus against the live gateway; yield its base URL; stop it."""
    binary = binary_or_skip("prometheus")
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(ALERTS_YML)]
    (job,) = config["scrape_configs"]
    job["static_configs"][0]["targets"] = [urlparse(live_gateway.url).netloc]
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = _free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={config_file}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start: {process.stderr.read()!r}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _query(url: str, expr: str) -> dict:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    return body["data"]


def _wait_for_series(url: str, queries: list[tuple[str, str]], timeout: float) -> list[str]:
    """Return the queries that still return no series once `timeout` has passed."""
    pending = list(queries)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [(name, expr) for name, expr in pending if not _query(url, expr)["result"]]
        if pending:
            time.sleep(0.5)
    return [f"{name}: {expr}" for name, expr in pending]


def test_promtool_accepts_the_shipped_config_and_rules():
    promtool = binary_or_skip("promtool")
    subprocess.run([promtool, "check", "rules", str(ALERTS_YML)], check=True,
                   capture_output=True, timeout=30)
    subprocess.run([promtool, "check", "config", str(PROMETHEUS_YML)], check=True,
                   capture_output=True, timeout=30, cwd=PROMETHEUS_YML.parent)
    # The alerts fire when they should and stay quiet when they should (alerts_test.yml).
    result = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], capture_output=True,
                            text=True, timeout=60, cwd=PROMETHEUS_YML.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_and_alert_query_returns_series(gateway_traffic, prometheus):
    assert {200, 402, 502} <= set(gateway_traffic.statuses)

    dashboard = [(title, grafana_substitute(expr)) for title, expr in dashboard_expressions()]
    alerts = [(rule["alert"], as_bool_comparison(rule["expr"])) for rule in alert_rules()]
    assert len(dashboard) >= 30 and len(alerts) >= 5

    started = time.monotonic()
    missing = _wait_for_series(prometheus, dashboard + alerts, timeout=20)
    print(f"all {len(dashboard) + len(alerts)} queries returned series after "
          f"{time.monotonic() - started:.1f} s")
    assert not missing, "queries without series:\n" + "\n".join(missing)

    # Prometheus itself evaluated every alert rule without error.
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == {rule["alert"] for rule in alert_rules()}
    deadline = time.monotonic() + 10
    while any(rule["health"] != "ok" for rule in rules) and time.monotonic() < deadline:
        time.sleep(0.5)
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
    assert all(rule["health"] == "ok" for rule in rules), rules

    # No scraped series is labelled by user, key or request.
    series = httpx.get(f"{prometheus}/api/v1/series", params={"match[]": '{job="llmops"}'},
                       timeout=5).json()["data"]
    label_names = {name for labels in series for name in labels}
    assert not label_names & {"user", "user_id", "api_key", "key_prefix", "request_id"}
    values = {value for labels in series for value in labels.values()}
    assert not set(filter(None, gateway_traffic.request_ids)) & values


def test_as_bool_comparison_leaves_label_matchers_alone():
    expr = 'sum(rate(x{status!="ok"}[5m])) / sum(rate(x[5m])) > 0.05'
    assert as_bool_comparison(expr) == \
        'sum(rate(x{status!="ok"}[5m])) / sum(rate(x[5m])) > bool 0.05'
