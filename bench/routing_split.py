"""Split an outcomes JSONL file into two halves for `eval_router --train A --test B`.

    .venv/bin/python bench/routing_split.py [OUTCOMES.jsonl] [--seed N] [--out DIR]

Rows are shuffled with a seeded permutation and cut in half; both halves are written under
bench/.cache/ (git-ignored: the data must not enter the repository) and their paths printed.
"""

import argparse
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?",
                        default=str(ROOT.parent / "shared/data/router_outcomes_dev.jsonl"))
    parser.add_argument("--seed", type=int, default=0, help="Seed of the shuffle.")
    parser.add_argument("--out", default=str(ROOT / "bench" / ".cache"),
                        help="Directory the halves are written to.")
    args = parser.parse_args()
    # split("\n"), not splitlines(): prompts may hold \x1c, \x85 or \u2028 inside a row.
    lines = [line for line in Path(args.file).read_text(encoding="utf-8").split("\n")
             if line.strip()]
    random.Random(args.seed).shuffle(lines)
    half = len(lines) // 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.file).stem
    for name, part in (("a", lines[:half]), ("b", lines[half:])):
        path = out / f"{stem}-split{args.seed}-{name}.jsonl"
        path.write_text("\n".join(part) + "\n", encoding="utf-8")
        print(f"{path} ({len(part)} rows)")


if __name__ == "__main__":
    main()
