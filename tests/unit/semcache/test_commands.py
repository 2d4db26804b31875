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


class TestInProcessStoreFromTheCommandLine:
    """Run as `manage.py <command>`, a process of its own, a command cannot reach the server's
    in-process store: it says so instead of reporting an empty cache."""

    @pytest.mark.parametrize("argv", [["cache_stats"], ["purge_cache", "--all", "--dry-run"],
                                      ["warm_cache", "lines.jsonl"]])
    def test_says_where_the_store_is(self, memory_engine, argv, capsys):
        from django.core.management import load_command_class

        command = load_command_class("semcache", argv[0])
        with pytest.raises(SystemExit) as exit_:
            command.run_from_argv(["manage.py", *argv])
        assert exit_.value.code == 1
        captured = capsys.readouterr()
        err, out = captured.err, captured.out
        assert "in-process store" in err and "inside the server process" in err
        assert "/metrics" in err and "REDIS_URL" in err
        assert "Would purge" not in out and "namespaces," not in out


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


def _verdicts_file(tmp_path, rows):
    """Write verdicts on _pairs_file's lines: (query line, candidate line, verdict, kind)."""
    from semcache.evaluation import load_pairs
    from semcache.judged import pair_hash

    pairs = load_pairs(_pairs_file(tmp_path))
    path = tmp_path / "verdicts.jsonl"
    path.write_text("".join(json.dumps({
        "query_line": q, "candidate_line": c, "candidate_side": "a",
        "hash": pair_hash(pairs[q - 1].text_b, pairs[c - 1].text_a), "verdict": verdict,
        "kind": kind, "reason": "synthetic"}) + "\n" for q, c, verdict, kind in rows))
    return path


VERDICTS = [
    (1, 1, "SAME", "paraphrase"),
    (3, 3, "SAME", "paraphrase"),
    (4, 4, "DIFFERENT", "entity_swap"),
    (5, 5, "DIFFERENT", "other"),
    (6, 1, "UNSURE", "other"),
]


class TestEvalCache:
    def test_json_report_on_a_small_file(self, tmp_path):
        result = json.loads(run("eval_cache", str(_pairs_file(tmp_path)), "--json",
                                "--cache-dir", "none"))
        assert result["queries"] == 6 and result["duplicate_queries"] == 3
        assert result["precision"] == 1.0 and result["false_hits_per_1k"] == 0
        assert result["hit_rate"] >= 0.33  # the identical question at least
        assert [row["threshold"] for row in result["thresholds"]][:2] == [0.8, 0.81]
        assert result["decision"] == "guards"
        assert result["threshold"] == 0.962
        assert result["lookup_ms_p99"] >= result["lookup_ms_p50"] >= 0
        assert result["gray_zone_lookups"] <= result["queries"]
        assert run("eval_cache", str(_pairs_file(tmp_path)), "--cache-dir", "none").count(
            "\n") > 18

    def test_judged_block_beside_the_label_figures(self, tmp_path):
        pairs, verdicts = _pairs_file(tmp_path), _verdicts_file(tmp_path, VERDICTS)
        result = json.loads(run("eval_cache", str(pairs), "--json", "--cache-dir", "none",
                                "--judged", str(verdicts)))
        judged = result["judged"]
        assert judged["verdicts"] == 5
        # The judged run is the decision's: the same hits, every query a hit or a miss.
        assert judged["hits"] == result["hits"] and judged["hits"] + judged["misses"] == 6
        assert judged["hits_identical"] >= 1  # line 2 asks line 2's question verbatim
        assert judged["same"] + judged["different"] + judged["unsure"] == (
            judged["hits_identical"] + judged["hits_judged"])
        assert judged["recall_queries"] == 2  # lines 1 and 3 have a SAME entry
        for key in ("precision", "precision_unsure_right", "precision_interval", "recall",
                    "recall_interval", "coverage_hits", "coverage_misses", "different_by_kind"):
            assert key in judged
        without = json.loads(run("eval_cache", str(pairs), "--json", "--cache-dir", "none"))
        assert "judged" not in without
        assert without["hits"] == result["hits"] and without["thresholds"] == result["thresholds"]
        text = run("eval_cache", str(pairs), "--cache-dir", "none", "--judged", str(verdicts))
        lines = text.splitlines()
        assert lines[1].startswith("decision (cosine >= 0.962")
        assert lines[2].startswith("judged (5 verdicts): precision ")
        assert "UNSURE wrong-right, 95% interval" in lines[2] and " recall " in lines[2]
        assert lines[3].startswith("  coverage: ") and f"of {result['hits']} hits (" in lines[3]
        assert lines[4].startswith("search + decision per lookup")

    def test_judged_verdicts_must_match_the_pairs_file(self, tmp_path):
        pairs = _pairs_file(tmp_path)
        verdicts = _verdicts_file(tmp_path, VERDICTS)
        rows = verdicts.read_text().splitlines()
        stale = json.loads(rows[2])
        stale["hash"] = "0" * 64  # line 4's texts as another file holds them
        verdicts.write_text("\n".join([*rows[:2], json.dumps(stale), *rows[3:]]) + "\n")
        with pytest.raises(CommandError, match=r"--judged: 1 verdicts do not match the pairs "
                                               r"file \(first: query line 4, candidate line 4\)"):
            run("eval_cache", str(pairs), "--cache-dir", "none", "--judged", str(verdicts))
        verdicts.write_text('{"query_line": 1}\n')
        with pytest.raises(CommandError, match=r"--judged: .*verdicts.jsonl:1: not a verdict"):
            run("eval_cache", str(pairs), "--cache-dir", "none", "--judged", str(verdicts))
        with pytest.raises(CommandError, match="No such file"):
            run("eval_cache", str(pairs), "--judged", str(tmp_path / "missing.jsonl"))

    def test_judged_with_a_limit_keeps_the_verdicts_inside_it(self, tmp_path):
        result = json.loads(run("eval_cache", str(_pairs_file(tmp_path)), "--json", "--limit",
                                "3", "--cache-dir", "none", "--judged",
                                str(_verdicts_file(tmp_path, VERDICTS))))
        assert result["judged"]["verdicts"] == 2 and result["queries"] == 3
        # 'default' is the shipped file: none of its verdicts falls within six lines.
        result = json.loads(run("eval_cache", str(_pairs_file(tmp_path)), "--json",
                                "--cache-dir", "none", "--judged", "default"))
        assert result["judged"]["verdicts"] == 0 and result["judged"]["hits_judged"] == 0

    @pytest.mark.skipif(not QQP.exists(), reason="../shared/data/qqp_pairs_dev.jsonl missing")
    def test_bounded_qqp_subset(self, tmp_path):
        result = json.loads(run("eval_cache", str(QQP), "--json", "--limit", "600",
                                "--cache-dir", str(tmp_path), "--judged", "default"))
        assert result["queries"] == 600
        # The shipped verdicts match the file they were read on.
        assert result["judged"]["verdicts"] > 0 and result["judged"]["hits"] == result["hits"]
        plain_095 = next(r for r in result["thresholds"] if r["threshold"] == 0.95)
        # The configured decision is at least as precise as the seed's plain 0.95.
        assert result["precision"] >= plain_095["precision"] - 0.02
