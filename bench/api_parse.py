"""Print what the API's JSON parser (llmops/api/parsers.py) costs on ~1 MB bodies, by stage.

    .venv/bin/python bench/api_parse.py [--repeat 20]

Stages: the depth pre-check, json.loads, and the walk that refuses lone surrogates and NUL
(skipped unless the text has a \\u0000 or \\uD800-\\uDFFF escape). Best of --repeat runs each;
printed, never asserted (bench/ rule).
"""

import argparse
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import offline_django_env  # noqa: E402


def _bodies() -> dict[str, bytes]:
    text = "The quick brown fox jumps over the lazy dog. " * 22_000
    accented = "Grüße aus Köln, ünïcödé text. " * 30_000
    emoji = "cache hit 🧪 " * 80_000
    many = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} été"}
            for i in range(25_000)]
    tools = [{"type": "function", "function": {
        "name": f"f{i}", "description": "a tool",
        "parameters": {"type": "object", "properties": {
            f"p{j}": {"type": "string", "description": "a parameter"} for j in range(10)}}}}
        for i in range(1_000)]

    def chat(content=None, ascii_only=True, **extra) -> bytes:
        body = {"model": "auto", "messages": [{"role": "user", "content": content}], **extra}
        return json.dumps(body, ensure_ascii=ascii_only).encode()

    return {
        "one 1 MB ASCII message": chat(text),
        "one non-ASCII message, UTF-8": chat(accented, ascii_only=False),
        "one non-ASCII message, \\u escapes": chat(accented),
        "one emoji message, \\u escapes (walked)": chat(emoji),
        "25k short messages, \\u escapes": json.dumps({"model": "auto", "messages": many}).encode(),
        "1,000 tools x 10 parameters": chat("hi", tools=tools),
    }


def _best(repeat: int, fn, *args) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _parse(parser, raw: bytes) -> None:
    parser.parse(io.BytesIO(raw))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="Runs per stage (best is shown).")
    args = parser.parse_args()
    offline_django_env()
    import django

    django.setup()
    from django.conf import settings

    from llmops.api import parsers

    limit = settings.LLMOPS_MAX_JSON_DEPTH
    print(f"{'body':42s} {'MB':>5s} {'parse':>8s} {'depth':>8s} {'loads':>8s} {'walk':>8s}")
    for name, raw in _bodies().items():
        text = raw.decode()
        data = json.loads(text)
        walked = parsers._SUSPECT_ESCAPE.search(text) is not None
        parse = _best(args.repeat, _parse, parsers.StrictJSONParser(), raw)
        depth = _best(args.repeat, parsers._depth_exceeds, text, limit)
        loads = _best(args.repeat, json.loads, text)
        walk = _best(args.repeat, parsers._has_bad_text, data) if walked else 0.0
        print(f"{name:42s} {len(raw) / 1e6:5.2f} {parse:7.2f}  {depth:7.2f}  {loads:7.2f}  "
              f"{walk:7.2f}{'' if walked else ' (skipped)'}")


if __name__ == "__main__":
    main()
