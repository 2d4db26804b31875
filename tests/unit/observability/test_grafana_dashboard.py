"""monitoring/grafana/dashboards/llmops.json: importable shape, and only metrics the code emits."""

import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from llmops import metrics  # noqa: F401  (registers the contract metrics)

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = json.loads((ROOT / "monitoring/grafana/dashboards/llmops.json").read_text())
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "piechart", "table"}
# Published by collectors at scrape time rather than registered metric objects.
COLLECTED = {"llm_budget_utilization_ratio", "llm_budget_top_utilization_ratio"}
PROMQL_WORDS = {"sum", "rate", "increase", "histogram_quantile", "by", "le", "max", "min", "avg",
                "count", "clamp_min", "label_values", "bool", "or", "and", "vector", "offset"}


def _panels() -> list[dict]:
    return [p for p in DASHBOARD["panels"] if p["type"] != "row"]


def _emitted() -> set[str]:
    names = set(COLLECTED)
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            names.add(sample.name)
        names.add(metric.name)
        if metric.type == "counter":
            names.add(f"{metric.name}_total")
        if metric.type == "histogram":
            names.update(f"{metric.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def test_top_level_fields_grafana_needs_to_import():
    for key in ("title", "uid", "schemaVersion", "panels", "templating", "time", "version"):
        assert key in DASHBOARD, key
    assert isinstance(DASHBOARD["schemaVersion"], int) and DASHBOARD["schemaVersion"] >= 36
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", DASHBOARD["uid"])
    (datasource,) = [v for v in DASHBOARD["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["name"] == "datasource" and datasource["query"] == "prometheus"


def test_panels_are_well_formed_and_use_the_datasource_variable():
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y"))
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(ref_ids) == len(set(ref_ids))
        assert all(t["expr"].strip() for t in panel["targets"])


def test_panels_do_not_overlap():
    cells = set()
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))


@pytest.mark.parametrize("topic", ["cost per request", "budget utilization", "model selection",
                                   "cache hits vs misses", "quality", "spend over time by model",
                                   "spend over time by team", "savings", "latency",
                                   "time to first token", "upstream errors", "fallbacks",
                                   "refused requests"])
def test_covers_the_required_panels(topic):
    assert any(topic in p["title"].lower() for p in _panels()), topic


def test_every_query_uses_only_metrics_the_code_emits():
    emitted = _emitted()
    for panel in _panels():
        for target in panel["targets"]:
            expr = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', "", target["expr"])
            for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
                if word in PROMQL_WORDS or not word.startswith(("llm_", "semantic_cache_")):
                    continue
                assert word in emitted, f"{panel['title']}: {word} is not emitted"


def test_no_query_groups_or_filters_by_a_per_caller_label():
    for panel in _panels():
        for target in panel["targets"]:
            assert not re.search(r"\b(user|user_id|api_key|key_prefix|request_id)\b",
                                 target["expr"]), target["expr"]


def test_grafanas_generated_schema_types_decode_it_without_loss():
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    decoded = json.loads(json.dumps(Dashboard.from_json(DASHBOARD), cls=JSONEncoder))
    assert decoded["uid"] == DASHBOARD["uid"] and 8 <= len(decoded["uid"]) <= 40
    assert [p["type"] for p in decoded["panels"]] == [p["type"] for p in DASHBOARD["panels"]]
    exprs = [t["expr"] for p in decoded["panels"] for t in p.get("targets", [])]
    assert exprs == [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    names = [v["name"] for v in decoded["templating"]["list"]]
    assert names == ["datasource", "model", "team"]
