"""The cache's management commands: purge_cache, cache_stats, warm_cache, eval_cache."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[3]
QQP = ROOT.parent / "shared" / "data" / "qqp_pairs_dev.jsonl"

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def teams(db):
    from llmops.models import Team

    return Team.objects.create(name="acme"), Team.objects.create(name="globex")


@pytest.fixture
def warmed(memory_engine, teams, tmp_path):
    lines = [
        {"team": "acme", "prompt": "What is the capital of France?", "answer": "Paris.",
         "cost": "0.002"},
        {"team": "acme", "prompt": "How many legs does a spider have?", "answer": "Eight.",
         "model": "gpt-4o"},
        {"team": "globex", "messages": [{"role": "user", "content": "Define entropy."}],
         "answer": {"role": "assistant", "content": "A measure of disorder."}},
    ]
    path = tmp_path / "warm.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    assert json.loads(run("warm_cache", str(path), "--json")) == {"stored": 3}
    return memory_engine


class TestWarmAndStats:
    def test_warm_then_stats(self, warmed):
        stats = json.loads(run("cache_stats", "--json"))
        assert stats["totals"]["entries"] == 3 and stats["totals"]["namespaces"] == 3
        assert "3 entries" in run("cache_stats")

    def test_warm_cache_rejects_bad_input(self, memory_engine, teams, tmp_path):
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps({"team": "nobody", "prompt": "x", "answer": "y"}))
        with pytest.raises(CommandError, match="No team"):
            run("warm_cache", str(path))
        with pytest.raises(CommandError, match="No such file"):
            run("warm_cache", str(tmp_path / "missing.jsonl"))


class TestPurge:
    def test_needs_a_filter(self, memory_engine):
        with pytest.raises(CommandError, match="Say what to purge"):
            run("purge_cache")

    def test_by_team_model_age_and_all(self, warmed):
        assert json.loads(run("purge_cache", "--team", "acme", "--dry-run", "--json")) == {
            "purged": 0, "matched": 2, "dry_run": True}
        assert "Purged 1 entries" in run("purge_cache", "--team", "acme", "--model", "gpt-4o")
        assert "Purged 0 entries" in run("purge_cache", "--older-than", "2h")
        assert "Purged 2 entries" in run("purge_cache", "--all")
        with pytest.raises(CommandError, match="Not a duration"):
            run("purge_cache", "--older-than", "soon")


def _pairs_file(tmp_path):
    rows = [
        ("How do I learn to cook pasta?", "What is the best way to learn cooking pasta?", 1),
        ("What is the capital of France?", "What is the capital of France?", 1),
        ("How can I lose weight fast?", "How can I lose weight quickly?", 1),
        ("Is it safe to drink tap water in Mexico?", "Is it safe to drink tap water in Peru?", 0),
        ("What is 15 percent of 240?", "What is 15 percent of 420?", 0),
        ("Why is the sky blue?", "How do airplanes fly?", 0),
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"text_a": a, "text_b": b, "label": label,
                                          "extra": 1}) for a, b, label in rows))
    return path


class TestEvalCache:
    def test_json_report_on_a_small_file(self, tmp_path):
        result = json.loads(run("eval_cache", str(_pairs_file(tmp_path)), "--json",
                                "--cache-dir", "none"))
        assert result["queries"] == 6 and result["duplicate_queries"] == 3
        assert result["precision"] == 1.0 and result["false_hits_per_1k"] == 0
        assert result["hit_rate"] >= 0.33  # the identical question at least
        assert [row["threshold"] for row in result["thresholds"]][:2] == [0.8, 0.81]
        assert result["decision"] == "guards"
        assert result["threshold"] == 0.968
        assert result["lookup_ms_p99"] >= result["lookup_ms_p50"] >= 0
        assert result["gray_zone_lookups"] <= result["queries"]
        assert run("eval_cache", str(_pairs_file(tmp_path)), "--cache-dir", "none").count(
            "\n") > 18

    @pytest.mark.skipif(not QQP.exists(), reason="../shared/data/qqp_pairs_dev.jsonl missing")
    def test_bounded_qqp_subset(self, tmp_path):
        result = json.loads(run("eval_cache", str(QQP), "--json", "--limit", "600",
                                "--cache-dir", str(tmp_path)))
        assert result["queries"] == 600
        plain_095 = next(r for r in result["thresholds"] if r["threshold"] == 0.95)
        # The configured decision is at least as precise as the seed's plain 0.95.
        assert result["precision"] >= plain_095["precision"] - 0.02
