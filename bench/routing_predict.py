"""Print the per-request cost of learned quality prediction (fit once, predict one prompt).

    DEBUG=1 .venv/bin/python bench/routing_predict.py [OUTCOMES.jsonl] [--train N] [--runs N]

Uses the dev outcomes file and the embedding cache eval_router fills (bench/.cache/); prints
numbers, asserts nothing.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")
os.environ.setdefault("DEBUG", "1")


def main() -> None:
    import django

    django.setup()
    import numpy as np

    from routing.evaluation import load_outcomes
    from routing.learned import OutcomeModel
    from routing.management.commands.eval_router import _embeddings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?",
                        default=str(ROOT.parent / "shared/data/router_outcomes_dev.jsonl"))
    parser.add_argument("--train", type=int, default=4000, help="Examples to fit on.")
    parser.add_argument("--runs", type=int, default=200, help="Single-prompt predictions timed.")
    args = parser.parse_args()

    rows = load_outcomes(args.file)
    prompts = sorted({o.prompt for o in rows})
    vectors = _embeddings(prompts, ROOT / "bench" / ".cache")
    row_of = {p: i for i, p in enumerate(prompts)}
    train, test = rows[:args.train], rows[args.train:args.train + args.runs]
    train_vectors = vectors[[row_of[o.prompt] for o in train]]
    started = time.perf_counter()
    model = OutcomeModel().fit([o.prompt for o in train], train_vectors,
                               np.array([o.weak_correct for o in train], dtype=float))
    fit_seconds = time.perf_counter() - started
    timings = []
    for outcome in test:
        vector = vectors[row_of[outcome.prompt]][None, :]
        started = time.perf_counter()
        model.predict([outcome.prompt], vector)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(f"fit on {len(train)} examples: {fit_seconds:.1f} s")
    print(f"predict one prompt ({len(timings)} runs): p50 {statistics.median(timings):.2f} ms, "
          f"p95 {timings[int(len(timings) * 0.95) - 1]:.2f} ms")


if __name__ == "__main__":
    main()
