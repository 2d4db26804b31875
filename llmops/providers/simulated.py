"""The simulated provider: deterministic answers with real token counts, for demos and benchmarks.

It calls no model. Its answers say they are simulated; latency and stream pace come from the
profile's options (`latency_ms`, `chunk_interval_ms`, `answer_tokens`).
"""

import asyncio
import hashlib
from collections.abc import AsyncIterator

from llmops.providers.base import Delta, ProviderAdapter, ProviderCall, Usage
from routing.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, count_text_tokens, message_text

_WORDS = (
    "the gateway answers with a deterministic simulated reply so demos and benchmarks run "
    "without any provider key while costs tokens latency and streaming behave like a real model"
).split()


def simulated_answer(messages: list[dict], max_tokens: int | None, answer_tokens: int) -> str:
    """Return the deterministic answer for `messages` (same prompt, same answer), at most
    `max_tokens` tokens long as `count_text_tokens` counts them."""
    last_user = next(
        (message_text(m) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    digest = hashlib.sha256(last_user.encode("utf-8", "surrogatepass")).digest()
    limit = answer_tokens if max_tokens is None else max(1, min(answer_tokens, max_tokens))
    words = ["[simulated]", "Re:", *last_user.split()[:8]]
    filler = (_WORDS[(digest[i % len(digest)] + i) % len(_WORDS)] for i in range(limit))
    words.extend(filler)
    answer: list[str] = []
    used = 0
    for word in words:
        cost = count_text_tokens(word)
        if used + cost > limit:
            break
        answer.append(word)
        used += cost
    return " ".join(answer) or "[simulated]"[: max(1, limit)]


class SimulatedAdapter(ProviderAdapter):
    """Deterministic answers, streamed at the profile's pace; no key, no network."""

    provider = "simulated"

    async def stream(self, call: ProviderCall) -> AsyncIterator[Delta]:
        options = call.options or {}
        latency = float(options.get("latency_ms", 0)) / 1000
        interval = float(options.get("chunk_interval_ms", 0)) / 1000
        max_tokens = call.params.get("max_completion_tokens") or call.params.get("max_tokens")
        answer = simulated_answer(call.messages, max_tokens, int(options.get("answer_tokens", 24)))
        if latency:
            await asyncio.sleep(latency)
        yield Delta(role="assistant")
        words = answer.split(" ")
        for index, word in enumerate(words):
            if interval and index:
                await asyncio.sleep(interval)
            yield Delta(content=word if index == 0 else " " + word)
        usage = Usage(
            prompt_tokens=TOKENS_PER_REPLY + sum(
                TOKENS_PER_MESSAGE + count_text_tokens(message_text(m)) for m in call.messages
            ),
            completion_tokens=count_text_tokens(answer),
        )
        finish = "length" if max_tokens and usage.completion_tokens >= max_tokens else "stop"
        yield Delta(finish_reason=finish, usage=usage)
