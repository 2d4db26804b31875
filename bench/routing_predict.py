"""Print the per-request cost of learned quality prediction (fit once, predict one prompt).

    DEBUG=1 .venv/bin/python bench/routing_predict.py [OUTCOMES.jsonl] [--train N] [--runs N]

Fits the learned model of two tiers (the weak and the strong model's outcomes) as the router
holds them (the configured layers, temperature and per-format members), then times what one
request costs: the prediction for every candidate profile of both tiers through
RoutingPredictor.predict with one memo per prompt (so structural features are computed once and
profiles of one tier share their tier's prediction). Uses the dev outcomes file and the
embedding cache eval_router fills (bench/.cache/); prints numbers, asserts nothing.
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


def _percentiles(timings: list[float]) -> str:
    timings = sorted(timings)
    return (f"p50 {statistics.median(timings):.3f} ms, "
            f"p95 {timings[max(0, int(len(timings) * 0.95) - 1)]:.3f} ms")


def main() -> None:
    import django

    django.setup()
    import numpy as np

    from bench.common import outcome_embeddings
    from routing import learned as config
    from routing.evaluation import load_outcomes
    from routing.learned import OutcomeModel
    from routing.models import ModelProfile
    from routing.predictor import TIER, KnnPredictor, RoutingPredictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?",
                        default=str(ROOT.parent / "shared/data/router_outcomes_dev.jsonl"))
    parser.add_argument("--train", type=int, default=4000, help="Examples to fit on.")
    parser.add_argument("--runs", type=int, default=200, help="Single-prompt requests timed.")
    args = parser.parse_args()

    rows = load_outcomes(args.file)
    vectors, all_layers = outcome_embeddings(rows)
    wanted = tuple(all_layers)
    train, test = rows[:args.train], rows[args.train:args.train + args.runs]
    train_texts = [o.prompt for o in train]
    at = np.arange(len(train))
    learned = {}
    for tier, field_name in (("efficient", "weak_correct"), ("premium", "strong_correct")):
        started = time.perf_counter()
        learned[(TIER, tier)] = OutcomeModel(
            k=config.K, layers=wanted, temperature=config.TEMPERATURE, formats=config.FORMATS,
            min_format_examples=config.MIN_EXAMPLES,
        ).fit(train_texts, vectors[at],
              np.array([getattr(o, field_name) for o in train], dtype=float),
              layers={x: all_layers[x][at] for x in wanted})
        print(f"fit tier {tier} on {len(train)} examples: {time.perf_counter() - started:.1f} s "
              f"(formats: {learned[(TIER, tier)].format_sizes or 'one set of members'})")
    predictor = RoutingPredictor(KnnPredictor(), learned)
    profiles = [ModelProfile(name=f"{tier}-{i}", tier=tier, quality_score=0.5)
                for tier in ("efficient", "premium") for i in range(3)]
    per_model, per_request = [], []
    model = learned[(TIER, "efficient")]
    for row, outcome in enumerate(test, start=len(train)):
        vector = vectors[row]
        layers = {x: all_layers[x][row] for x in wanted}
        started = time.perf_counter()
        model.predict([outcome.prompt], vector[None, :],
                      layers={x: v[None, :] for x, v in layers.items()})
        per_model.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        memo: dict = {}
        for profile in profiles:
            predictor.predict(profile, outcome.prompt, vector, layers=layers or None, memo=memo)
        per_request.append((time.perf_counter() - started) * 1000)
    print(f"one tier's model, one prompt ({len(per_model)} runs): {_percentiles(per_model)}")
    print(f"one request, {len(profiles)} profiles in {len(learned)} tiers "
          f"({len(per_request)} runs): {_percentiles(per_request)}")


if __name__ == "__main__":
    main()
