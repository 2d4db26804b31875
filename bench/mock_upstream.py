"""A fast mock of an OpenAI Chat Completions server on 127.0.0.1 (streamed and not).

The model id sets the behaviour, so one mock serves every scenario: ``mock-d100-n21-i100`` waits
100 ms before the first byte, then (streamed) sends 21 content chunks 100 ms apart; ``mock-d0``
answers at once. Unset parts fall back to the command-line defaults.

With ``--labels WORKLOAD.jsonl`` it is also the savings bench's simulated provider: the model ids
of bench/savings_answers.py (``labelled-weak``, ``labelled-strong``) answer a workload prompt with
its answer key and that model's correctness, billing the prompt's tokens and a fixed answer.

Usage: python -m bench.mock_upstream --port P [--delay-ms 0] [--chunks 8] [--interval-ms 0]
       [--labels WORKLOAD.jsonl]
"""

import argparse
import asyncio
import json
import re
import time
from dataclasses import dataclass
from functools import lru_cache

_MODEL_PARAMS = re.compile(r"-([dni])(\d+)")
_ANSWER_WORDS = ("Benchmarks", " print", " numbers", ";", " they", " never", " assert", " on",
                 " time", ".")


@dataclass(frozen=True)
class Behaviour:
    """How the mock answers one model id."""

    delay_s: float
    chunks: int
    interval_s: float


@dataclass(frozen=True)
class Defaults:
    delay_ms: int = 0
    chunks: int = 8
    interval_ms: int = 0


DEFAULTS = Defaults()
#: workload prompt -> label (savings bench; empty unless --labels)
LABELS: dict[str, dict] = {}


@lru_cache(maxsize=256)
def behaviour_for(model: str) -> Behaviour:
    """Return the behaviour that `model` asks for (``-d<ms>``, ``-n<chunks>``, ``-i<ms>``)."""
    parts = {key: int(value) for key, value in _MODEL_PARAMS.findall(model)}
    return Behaviour(delay_s=parts.get("d", DEFAULTS.delay_ms) / 1000,
                     chunks=max(1, parts.get("n", DEFAULTS.chunks)),
                     interval_s=parts.get("i", DEFAULTS.interval_ms) / 1000)


def _word(i: int) -> str:
    return _ANSWER_WORDS[i % len(_ANSWER_WORDS)]


@lru_cache(maxsize=256)
def completion_bytes(model: str) -> bytes:
    """Return the full HTTP response of a non-streamed answer for `model` (built once)."""
    chunks = behaviour_for(model).chunks
    body = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant",
                                 "content": "".join(_word(i) for i in range(chunks))}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": chunks, "total_tokens": 20 + chunks},
    }, separators=(",", ":")).encode()
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def _chunk(model: str, delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    payload = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
               "model": model,
               "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        payload["usage"] = usage
    event = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return f"{len(event):x}\r\n".encode() + event + b"\r\n"


_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                b"transfer-encoding: chunked\r\n\r\n")
_DONE = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"


async def _stream(writer: asyncio.StreamWriter, model: str, include_usage: bool) -> None:
    b = behaviour_for(model)
    writer.write(_STREAM_HEAD + _chunk(model, {"role": "assistant", "content": ""}))
    for i in range(b.chunks):
        if i and b.interval_s:
            await asyncio.sleep(b.interval_s)
        writer.write(_chunk(model, {"content": _word(i)}))
        await writer.drain()
    writer.write(_chunk(model, {}, finish="stop"))
    if include_usage:
        writer.write(_chunk(model, {}, usage={"prompt_tokens": 20, "completion_tokens": b.chunks,
                                              "total_tokens": 20 + b.chunks}))
    writer.write(_DONE)


_MODELS = json.dumps({"object": "list", "data": [
    {"id": "mock", "object": "model", "created": 0, "owned_by": "bench"}]}).encode()
_OK = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
       + str(len(_MODELS)).encode() + b"\r\n\r\n" + _MODELS)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def labelled_completion_bytes(request: dict, model: str) -> bytes:
    """Return the savings bench's answer to `request` by the simulated `model`."""
    from bench import savings_answers

    messages = request.get("messages") or [{}]
    prompt = str(messages[-1].get("content", ""))
    content = savings_answers.answer_content(prompt, LABELS.get(prompt),
                                             savings_answers.KIND[model])
    usage = {"prompt_tokens": savings_answers.prompt_tokens(prompt),
             "completion_tokens": savings_answers.ANSWER_TOKENS}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    body = json.dumps({
        "id": "chatcmpl-labelled", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": usage}, separators=(",", ":")).encode()
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _answer(writer: asyncio.StreamWriter, path: bytes, body: bytes) -> None:
    if not path.endswith(b"/chat/completions"):
        writer.write(_OK if b"models" in path or b"health" in path else _NOT_FOUND)
        return
    request = json.loads(body)
    model = str(request.get("model", "mock"))
    if LABELS and model.startswith("labelled-"):
        writer.write(labelled_completion_bytes(request, model))
        return
    b = behaviour_for(model)
    if b.delay_s:
        await asyncio.sleep(b.delay_s)
    if request.get("stream"):
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        await _stream(writer, model, include_usage)
    else:
        writer.write(completion_bytes(model))


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one keep-alive connection: requests in order, Content-Length bodies only."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) < 2:
                writer.write(_BAD)
                break
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            body = await reader.readexactly(length) if length else b""
            await _answer(writer, parts[1], body)
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int) -> None:
    """Serve until cancelled."""
    server = await asyncio.start_server(handle, host, port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    global DEFAULTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="Bind address (loopback).")
    parser.add_argument("--port", type=int, required=True, help="Port to listen on.")
    parser.add_argument("--delay-ms", type=int, default=0, help="Default delay before answering.")
    parser.add_argument("--chunks", type=int, default=8, help="Default content chunks/words.")
    parser.add_argument("--interval-ms", type=int, default=0,
                        help="Default pause between streamed chunks.")
    parser.add_argument("--labels", default=None,
                        help="Savings workload (JSONL with labels) to answer labelled-* models.")
    args = parser.parse_args()
    DEFAULTS = Defaults(args.delay_ms, args.chunks, args.interval_ms)
    if args.labels:
        from bench.savings_answers import labels_by_prompt

        with open(args.labels) as handle:
            LABELS.update(labels_by_prompt([json.loads(line) for line in handle if line.strip()]))
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
