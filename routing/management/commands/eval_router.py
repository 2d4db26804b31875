"""Evaluate the learned router against random and the seed's keyword baseline (RouteLLM metrics),
and the gateway's own policy rule (`routing.policy.choose`) on the same predictions."""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from routing import learned
from routing.evaluation_report import evaluation_json, evaluation_lines
from routing.evaluation_run import EvaluationError, RouterEvalOptions, router_evaluate


class Command(BaseCommand):
    help = ("Route every test prompt between a weak and a strong model, sweep the threshold and "
            "print APGR, CPT(50%) and CPT(80%) with costs, for the learned router and the "
            "random and keyword baselines, and for the gateway's policy rule (routing.policy."
            "choose) swept over the escalation margin at each quality bar. Use --train A --test "
            "B, or --folds N FILE.")

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="Outcomes JSONL for --folds.")
        parser.add_argument("--train", help="Outcomes JSONL to learn from.")
        parser.add_argument("--test", help="Outcomes JSONL to evaluate on.")
        parser.add_argument("--folds", type=int, default=0,
                            help="Cross-validate on FILE with this many folds (e.g. 5).")
        parser.add_argument("--k", type=int, default=None,
                            help="Neighbourhood scale k of the learned model: rates at k/8, k/3, k "
                                 f"and 4k neighbours (default {learned.K}, the gateway's).")
        parser.add_argument("--weak-model", default="gpt-4o-mini",
                            help="Profile whose prices stand for the weak model.")
        parser.add_argument("--strong-model", default="gpt-4o",
                            help="Profile whose prices stand for the strong model.")
        parser.add_argument("--output-tokens", type=int, default=256,
                            help="Answer length assumed per call when costing (tokens).")
        parser.add_argument("--cache-dir", default=str(settings.BASE_DIR / "bench" / ".cache"),
                            help="Where prompt embeddings are cached between runs.")
        parser.add_argument("--seed", type=int, default=0, help="Seed for folds and random.")
        parser.add_argument("--repeats", type=int, default=1,
                            help="With --folds: repeat the cross-validation with this many fold "
                                 "seeds (seed, seed+1, ...) and average every split; one lucky "
                                 "shuffle then cannot carry the result.")
        parser.add_argument("--min-quality", type=float, action="append", default=None,
                            help="Quality bar of a policy row (repeatable; default the free, "
                                 "standard and premium tier bars of ROUTING_TIER_MIN_QUALITY). "
                                 "A margin-only row (no bar) is always printed.")
        parser.add_argument("--margin", type=float, action="append", default=None,
                            help="Escalation margin whose operating point to print for every "
                                 "policy row (repeatable; default ROUTING_ESCALATION_MARGIN), "
                                 "beside the rule off (the bar alone).")
        parser.add_argument("--layers", default=None,
                            help="Comma-separated intermediate MiniLM layers the learned model "
                                 "predicts from (default "
                                 f"{','.join(map(str, learned.LAYERS))}, the gateway's); 'none': "
                                 "the final embedding only, as for a request without them.")
        parser.add_argument("--temperature", type=float, default=None,
                            help="Logit scale of the layered prediction "
                                 f"(default {learned.TEMPERATURE}, the gateway's).")
        parser.add_argument("--formats", choices=("on", "off"), default=None,
                            help="Members of its own per prompt format (multiple-choice, open) "
                                 "(default on, as the gateway).")
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object (apgr, cpt50, cpt80 of the learned "
                                 "router, plus baselines).")

    def handle(self, *args, **opts):
        options = RouterEvalOptions(
            cache_dir=Path(opts["cache_dir"]), file=opts["file"], train=opts["train"],
            test=opts["test"], folds=opts["folds"], repeats=opts["repeats"], seed=opts["seed"],
            k=opts["k"], weak_model=opts["weak_model"], strong_model=opts["strong_model"],
            output_tokens=opts["output_tokens"], min_quality=opts["min_quality"],
            margin=opts["margin"], layers=opts["layers"], temperature=opts["temperature"],
            formats=opts["formats"])
        try:
            result = router_evaluate(options=options)
        except EvaluationError as exc:
            raise CommandError(str(exc)) from exc
        if opts["json"]:
            self.stdout.write(json.dumps(evaluation_json(result), indent=2))
            return
        for line in evaluation_lines(result):
            self.stdout.write(line)
