"""Run every bench (overhead vs LiteLLM, 1,000 concurrent streams, soak) and print the tables.

Usage: python -m bench.run_all [--quick] [--only overhead streams soak] [--update-docs]

--quick is a smoke run (short cells, 200 streams, a 1-minute soak). --update-docs writes the
tables between the `<!-- bench:... -->` markers of docs/performance.md; `python -m bench.report`
rewrites them later from the saved results.
"""

import argparse
import sys
import traceback
from collections.abc import Callable

from bench import overhead, report, soak, streams
from bench.common import machine_info, save_result

SCENARIOS = ("overhead", "streams", "soak")


def _runners(args: argparse.Namespace) -> dict[str, Callable[[], dict]]:
    return {
        "overhead": lambda: overhead.run(overhead.config_from(args)),
        "streams": lambda: streams.run(streams=200 if args.quick else args.streams,
                                       workers=args.stream_workers,
                                       semantic_cache=not args.stream_no_cache,
                                       peer=args.stream_peer),
        "soak": lambda: soak.run(seconds=60.0 if args.quick else args.soak_seconds,
                                 warmup=10.0 if args.quick else args.soak_warmup,
                                 clients=args.clients, workers=args.soak_workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS),
                        help="Scenarios to run (default: all).")
    parser.add_argument("--update-docs", action="store_true",
                        help="Write the tables into docs/performance.md.")
    overhead.add_arguments(parser)  # also adds --quick
    streams.add_arguments(parser)
    soak.add_arguments(parser)
    args = parser.parse_args()
    print(f"[bench] {machine_info()}", flush=True)
    failures = 0
    for name, run in _runners(args).items():
        if name not in args.only:
            continue
        try:
            result = run()
        except Exception:  # noqa: BLE001 - report it, run the other scenarios anyway
            failures += 1
            print(f"[bench] {name} failed:\n{traceback.format_exc()}", flush=True)
            continue
        save_result(name, result)
        text = report.section_text(name, result)
        print(text, flush=True)
        if args.update_docs:
            report.update_doc(name, text)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
