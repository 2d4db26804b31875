"""Print what reading an upstream stream costs per event: the Responses event stream
(`openai_responses` profiles) next to Chat Completions chunks, each decoded into the adapter's
deltas by its `StreamDecoder`, from SSE events (the HTTP part is the same for both).

    .venv/bin/python bench/provider_decode.py [--chunks 500] [--repeat 20]

Best of --repeat runs; per content event in microseconds. Printed, never asserted (bench/ rule).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _chat_events(count: int) -> list:
    from llmops.providers.sse import SSEEvent

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> SSEEvent:
        return SSEEvent("message", json.dumps({
            "id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish}], "usage": usage}))

    return ([chunk({"role": "assistant", "content": ""})]
            + [chunk({"content": f" word{i}"}) for i in range(count)]
            + [chunk({}, "stop"), chunk({}, usage={"prompt_tokens": 20,
                                                   "completion_tokens": count}),
               SSEEvent("message", "[DONE]")])


def _responses_events(count: int) -> list:
    from llmops.providers.sse import SSEEvent

    def event(kind: str, **fields) -> SSEEvent:
        return SSEEvent(kind, json.dumps({"type": kind, "sequence_number": 0, **fields}))

    response = {"id": "resp_x", "object": "response", "status": "in_progress", "output": []}
    done = {**response, "status": "completed",
            "usage": {"input_tokens": 20, "output_tokens": count}}
    return ([event("response.created", response=response),
             event("response.in_progress", response=response),
             event("response.output_item.added", output_index=0, item={
                 "id": "msg_x", "type": "message", "role": "assistant", "content": []})]
            + [event("response.output_text.delta", item_id="msg_x", output_index=0,
                     content_index=0, delta=f" word{i}", logprobs=[]) for i in range(count)]
            + [event("response.output_text.done", item_id="msg_x", output_index=0,
                     content_index=0, text="...", logprobs=[]),
               event("response.completed", response=done)])


def _best(repeat: int, make_decoder, events: list) -> float:
    best = float("inf")
    for _ in range(repeat):
        decoder = make_decoder()
        started = time.perf_counter()
        for event in events:
            decoder.feed(event)
        decoder.finish()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=500, help="Content events per answer.")
    parser.add_argument("--repeat", type=int, default=20, help="Runs (best is shown).")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
    import django

    django.setup()
    from llmops.providers.openai_chat import OpenAIStreamDecoder
    from llmops.providers.openai_responses import ResponsesStreamDecoder

    print(f"{'upstream stream':28s} {'us/content event':>17s}")
    for name, decoder, events in (
            ("chat completions chunks", OpenAIStreamDecoder, _chat_events(args.chunks)),
            ("responses events", ResponsesStreamDecoder, _responses_events(args.chunks))):
        seconds = _best(args.repeat, decoder, events)
        print(f"{name:28s} {seconds / args.chunks * 1e6:17.1f}")


if __name__ == "__main__":
    main()
