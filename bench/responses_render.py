"""Print what the Responses front door adds to a streamed answer: rendering the pipeline's
chat chunks as Responses events and encoding them, next to Chat Completions' encoding.

    .venv/bin/python bench/responses_render.py [--chunks 500] [--repeat 20]

Best of --repeat runs; per chunk in microseconds. Printed, never asserted (bench/ rule).
"""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _chunks(count: int) -> list[dict]:
    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0,
                "model": "m", "choices": [{"index": 0, "delta": delta,
                                           "finish_reason": finish, "logprobs": None}]}

    usage = {"prompt_tokens": 20, "completion_tokens": count, "total_tokens": 20 + count}
    return ([chunk({"role": "assistant", "content": ""})]
            + [chunk({"content": f" word{i}"}) for i in range(count)]
            + [chunk({}, "stop"), {"model": "m", "choices": [], "usage": usage}])


async def _source(chunks: list[dict]):
    for chunk in chunks:
        yield chunk


async def _drain(events) -> int:
    size = 0
    async for event in events:
        size += len(event)
    return size


async def _responses(chunks: list[dict]) -> int:
    from llmops.api.sse import sse_event
    from llmops.responses.render import ResponseEvents, ResponseShell

    rendered = ResponseEvents(ResponseShell(request={"model": "m", "input": "x"}), model="m")
    size = sum(len(sse_event(data, event=name)) for name, data in rendered.opening())
    for chunk in chunks:
        size += sum(len(sse_event(data, event=name)) for name, data in rendered.feed(chunk))
    return size + sum(len(sse_event(data, event=name)) for name, data in rendered.closing())


async def _chat(chunks: list[dict]) -> int:
    from llmops.api.sse import chat_completion_sse

    return await _drain(chat_completion_sse(_source(chunks)))


def _best(repeat: int, fn, chunks: list[dict]) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        size = asyncio.run(fn(chunks))
        best = min(best, time.perf_counter() - started)
    return best, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=500, help="Content chunks per answer.")
    parser.add_argument("--repeat", type=int, default=20, help="Runs (best is shown).")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
    import django

    django.setup()
    chunks = _chunks(args.chunks)
    print(f"{'encoding':28s} {'us/chunk':>9s} {'bytes/chunk':>12s}")
    for name, fn in (("chat completions SSE", _chat), ("responses events SSE", _responses)):
        seconds, size = _best(args.repeat, fn, chunks)
        print(f"{name:28s} {seconds / len(chunks) * 1e6:9.1f} {size / len(chunks):12.0f}")


if __name__ == "__main__":
    main()
