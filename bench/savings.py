"""The savings bench (issue #23): bill cut and quality of a labelled workload through llmops.

A live gateway (PostgreSQL, Redis, semantic cache on, ``auto`` routing trained on ``--examples``)
serves the workload (bench/savings_workload.py) against the simulated provider
(bench/mock_upstream.py ``--labels``: profiles ``bench-weak`` and ``bench-strong`` priced as two
catalog models). Every answer, cached ones included, is scored (bench/savings_answers.py).
Baseline: every request to bench-strong, no cache — priced from the same token counts the
simulated provider bills, at bench-strong's price. Each routing level is replayed by its own team
(its own cache namespace and ledger rows) on the same server; the first level is the headline.

Usage: python -m bench.savings WORKLOAD.jsonl --examples OUTCOMES.jsonl [--json] [--limit N]
       [--levels default,0.6,0.8,0.9] [--concurrency 4]
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx

from bench import savings_answers as answers
from bench.common import PYTHON, ROOT, machine_info, save_result
from bench.savings_workload import read_jsonl
from bench.servers import (
    BENCH_DATABASE_URL,
    bench_run,
    llmops,
    llmops_env,
    mock_upstream,
    setup_llmops,
)

CATALOG = ROOT.parent / "shared" / "data" / "model_prices_and_context_window.json"
PROBE_TEAM = "savings-probe"


def catalog_prices(path: Path, model: str) -> tuple[Decimal, Decimal]:
    """Return `model`'s (input, output) USD per token from the LiteLLM price catalog."""
    entry = json.loads(path.read_text())[model]
    return (Decimal(str(entry["input_cost_per_token"])),
            Decimal(str(entry["output_cost_per_token"])))


def profile_fields(weak: tuple[Decimal, Decimal], strong: tuple[Decimal, Decimal]) -> dict:
    """Return the two bench profiles' fields (priors only matter before routing is fitted)."""
    common = {"context_window": 128000, "max_output_tokens": 16384}
    return {
        "bench-weak": {**common, "tier": "efficient", "quality_score": 0.5,
                       "input_price_per_token": weak[0], "output_price_per_token": weak[1]},
        "bench-strong": {**common, "tier": "premium", "quality_score": 0.85,
                         "input_price_per_token": strong[0], "output_price_per_token": strong[1]},
    }


def baseline(lines: list[dict], strong: tuple[Decimal, Decimal]) -> dict:
    """Return the all-strong, no-cache bill and accuracy of `lines`."""
    bill = sum((answers.prompt_tokens(_prompt(line)) * strong[0]
                + answers.ANSWER_TOKENS * strong[1] for line in lines), Decimal(0))
    correct = sum(answers.correct_for(line["label"], "strong") for line in lines)
    return {"bill": bill, "accuracy": correct / len(lines)}


def _prompt(line: dict) -> str:
    return line["body"]["messages"][-1]["content"]


def import_examples(path: Path) -> dict:
    """Import and embed the routing examples into the bench database (labels per profile)."""
    env = {**os.environ, **llmops_env(semantic_cache=True, workers=1)}
    argv = [PYTHON, "manage.py", "import_routing_examples", str(path), "--weak",
            "model:bench-weak", "--strong", "model:bench-strong", "--json"]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"import_routing_examples failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def post(client: httpx.AsyncClient, url: str, key: str, body: dict,
               headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post(url, json=body, headers={"Authorization": f"Bearer {key}",
                                                      **(headers or {})})


async def wait_fitted(client: httpx.AsyncClient, url: str, key: str, probes: list[str],
                      timeout: float = 900.0) -> float:
    """Wait until the gateway's predictor is fitted: a probe both models answer well routes to
    bench-weak (on priors everything escalates). Probes bypass the cache. Return seconds."""
    started = time.monotonic()
    headers = {"Cache-Control": "no-cache, no-store"}
    while time.monotonic() - started < timeout:
        for prompt in probes:
            body = {"model": "auto", "max_tokens": 16,
                    "messages": [{"role": "user", "content": prompt}]}
            response = await post(client, url, key, body, headers)
            if response.headers.get("x-llmops-model") == "bench-weak":
                return time.monotonic() - started
        await asyncio.sleep(5)
    raise TimeoutError("routing was not fitted in time")


async def replay(client: httpx.AsyncClient, url: str, key: str, lines: list[dict],
                 hint: str | None, concurrency: int) -> list[dict]:
    """Send `lines` in order, at most `concurrency` at a time; return one outcome per line."""
    gate = asyncio.Semaphore(concurrency)
    headers = {"x-llmops-min-quality": hint} if hint else {}

    async def one(line: dict) -> dict:
        async with gate:
            response = await post(client, url, key, line["body"], headers)
        prompt, label = _prompt(line), line["label"]
        outcome = {"task": "answer_key" not in label, "status": response.status_code,
                   "model": response.headers.get("x-llmops-model", ""),
                   "cache": response.headers.get("x-llmops-cache", ""), "correct": 0,
                   "key": answers.answer_key(prompt, label), "stored_key": None}
        if response.status_code == 200:
            content = response.json()["choices"][0]["message"]["content"]
            outcome["correct"] = answers.score(prompt, label, content)
            outcome["stored_key"] = answers.stored_key(content)
        return outcome

    tasks = []
    for line in lines:
        await gate.acquire()  # keep the order: a line starts only when a slot is free
        gate.release()
        tasks.append(asyncio.create_task(one(line)))
        await asyncio.sleep(0)
    return await asyncio.gather(*tasks)


def ledger_bills() -> dict[str, dict]:
    """Return {team: {"bill", "rows"}} from this run's ledger."""
    import psycopg

    with psycopg.connect(BENCH_DATABASE_URL) as conn:
        rows = conn.execute(
            "SELECT t.name, SUM(u.cost), COUNT(*) FROM budgets_usagerecord u "
            "JOIN llmops_team t ON t.id = u.team_id GROUP BY t.name").fetchall()
    return {name: {"bill": Decimal(bill or 0), "rows": count} for name, bill, count in rows}


def summarize(outcomes: list[dict], bill: Decimal, base: dict) -> dict:
    """Return one level's figures, with the cache's and routing's parts told apart."""
    n = len(outcomes)
    accuracy = sum(o["correct"] for o in outcomes) / n
    hits = [o for o in outcomes if o["cache"].startswith("hit")]
    calls = [o for o in outcomes if o["task"] and not o["cache"].startswith("hit")]
    weak = [o for o in calls if o["model"] == "bench-weak"]
    questions = [o for o in outcomes if not o["task"]]
    seen: set[str] = set()
    repeats = 0
    for o in questions:
        repeats += o["key"] in seen
        seen.add(o["key"])
    part = {}
    for name, rows in (("tasks", [o for o in outcomes if o["task"]]), ("questions", questions)):
        row_hits = [o for o in rows if o["cache"].startswith("hit")]
        part[name] = {
            "requests": len(rows), "accuracy": _ratio(sum(o["correct"] for o in rows), len(rows)),
            "exact_hits": sum(o["cache"] == "hit_exact" for o in rows),
            "semantic_hits": sum(o["cache"] == "hit_semantic" for o in rows),
            "hits_same_key": sum(o["stored_key"] == o["key"] for o in row_hits),
            "hits_correct": sum(o["correct"] for o in row_hits)}
    part["questions"]["cluster_repeats"] = repeats
    part["tasks"]["calls"] = len(calls)
    part["tasks"]["routed_weak"] = len(weak)
    part["tasks"]["routed_weak_correct"] = sum(o["correct"] for o in weak)
    part["tasks"]["routed_strong_correct"] = sum(o["correct"] for o in calls
                                                 if o["model"] == "bench-strong")
    return {
        "bill_cut": round(float(1 - bill / base["bill"]), 4),
        "quality_ratio": round(accuracy / base["accuracy"], 4),
        "bill": f"{bill:.6f}", "baseline_bill": f"{base['bill']:.6f}",
        "accuracy": round(accuracy, 4), "baseline_accuracy": round(base["accuracy"], 4),
        "cache_hit_rate": round(len(hits) / n, 4),
        "strong_share": _ratio(len(calls) - len(weak), len(calls)),
        "errors": sum(o["status"] != 200 for o in outcomes),
        **part,
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


async def run_levels(target_url: str, keys: dict[str, str], levels: list[str], lines: list[dict],
                     probes: list[str], concurrency: int) -> tuple[dict, float]:
    url = f"{target_url}/v1/chat/completions"
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        fitted = await wait_fitted(client, url, keys[PROBE_TEAM], probes)
        results = {}
        for level in levels:
            started = time.monotonic()
            outcomes = await replay(client, url, keys[_team(level)], lines,
                                    None if level == "default" else level, concurrency)
            results[level] = (outcomes, time.monotonic() - started)
            sys.stderr.write(f"level {level}: {len(lines)} requests in "
                             f"{results[level][1]:.0f}s\n")
    return results, fitted


def _team(level: str) -> str:
    return f"savings-{level}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", type=Path, help="Workload JSONL (bench/savings_workload.py).")
    parser.add_argument("--examples", type=Path, required=True,
                        help="Routing outcome rows to import and fit first.")
    parser.add_argument("--limit", type=int, default=None, help="Replay the first N lines only.")
    parser.add_argument("--levels", default="default,0.6,0.8,0.9",
                        help="Routing levels, comma-separated: 'default' (the key's tier) or a "
                             "min_quality hint. The first is the headline.")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--weak-model", default="gpt-4o-mini", help="Catalog price of bench-weak.")
    parser.add_argument("--strong-model", default="gpt-4o", help="Catalog price of bench-strong.")
    parser.add_argument("--catalog", type=Path, default=CATALOG)
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()

    lines = read_jsonl(args.workload)[:args.limit]
    examples = read_jsonl(args.examples)
    shared = {_prompt(line) for line in lines} & {row["prompt"] for row in examples}
    if shared:
        parser.error(f"{len(shared)} prompt(s) are both in the workload and the examples")
    weak = catalog_prices(args.catalog, args.weak_model)
    strong = catalog_prices(args.catalog, args.strong_model)
    levels = [level.strip() for level in args.levels.split(",") if level.strip()]
    probes = sorted((r["prompt"] for r in examples if r["weak_correct"] and r["strong_correct"]),
                    key=len)[:8]
    info = machine_info()
    with mock_upstream(["--labels", str(args.workload)]) as mock, bench_run():
        keys = setup_llmops(mock, answers.UPSTREAM, profile_fields=profile_fields(weak, strong),
                            teams=[PROBE_TEAM, *(_team(level) for level in levels)])["keys"]
        imported = import_examples(args.examples)
        with llmops(keys[PROBE_TEAM], semantic_cache=True, workers=1, name="savings",
                    extra_env={"LLMOPS_REFERENCE_MODEL": "bench-strong"}) as target:
            results, fitted = asyncio.run(run_levels(target.base_url, keys, levels, lines,
                                                     probes, args.concurrency))
        bills = ledger_bills()
    base = baseline(lines, strong)
    curve = []
    for level in levels:
        outcomes, seconds = results[level]
        ledger = bills.get(_team(level), {"bill": Decimal(0), "rows": 0})
        curve.append({"level": level, "seconds": round(seconds), "ledger_rows": ledger["rows"],
                      **summarize(outcomes, ledger["bill"], base)})
    head = curve[0]
    report = {key: head[key] for key in ("bill_cut", "quality_ratio", "bill", "baseline_bill",
                                         "accuracy", "baseline_accuracy", "cache_hit_rate",
                                         "strong_share")}
    report.update({"level": head["level"], "requests": len(lines),
                   "prices": {"bench-weak": args.weak_model, "bench-strong": args.strong_model},
                   "examples_imported": imported, "fit_seconds": round(fitted),
                   "concurrency": args.concurrency, "curve": curve, "machine": info,
                   "machine_after": machine_info()["load"]})
    save_result("savings", report)
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        for point in curve:
            sys.stdout.write(f"{point['level']:>8}: bill cut {point['bill_cut']:.1%}, quality "
                             f"ratio {point['quality_ratio']:.3f}, hits "
                             f"{point['cache_hit_rate']:.1%}, strong {point['strong_share']}\n")


if __name__ == "__main__":
    main()
