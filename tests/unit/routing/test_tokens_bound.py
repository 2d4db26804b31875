"""The reservation's prompt bound is never below what the provider bills, for every model rule.

`tests.toolkit.billing` counts billed tokens on its own (OpenAI's tool namespace, each model's
image rule from the image's real size, audio seconds); the estimate must never be below it.
"""

import base64
import io
import struct
import wave
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.tokens import estimate_request_prompt_tokens
from tests.toolkit.billing import billed_prompt_tokens

# (provider, upstream model): one per image rule, plus models no rule names.
MODELS = [
    ("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"), ("openai", "gpt-4.1-nano"), ("openai", "o4-mini"),
    ("openai", "gpt-4-turbo"), ("openai", "gpt-9-unknown"),
    ("openai_compatible", "llava-next"), ("openai_compatible", "gpt-4o-mini"),
    ("anthropic", "claude-haiku-4-5"), ("anthropic", "claude-sonnet-4-5-20250929"),
    ("anthropic", "claude-3-opus-20240229"), ("anthropic", "claude-opus-4-7"),
    ("gemini", "gemini-2.5-flash"), ("gemini", "gemini-3-pro-preview"),
]


# --- Media makers: real headers of the requested size ------------------------------------------
def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def webp(width: int, height: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (
        (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


MAKERS = {"png": png, "jpeg": jpeg, "gif": gif, "webp": webp}


def wav(seconds: float, rate: int, width: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(b"\x00" * (int(seconds * rate) * width))
    return buffer.getvalue()


def data_url(kind: str, data: bytes) -> str:
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}"


# --- Strategies ----------------------------------------------------------------------------------
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
emoji = st.sampled_from(["🎉", "👩‍👩‍👧‍👦", "🇫🇷", "日本語", "Ünïcödé", "∑∫√", " ", "\n", "\t"])
prose = st.lists(st.one_of(texts, emoji, words), max_size=4).map("".join)


@st.composite
def schemas(draw, depth: int = 0):
    kinds = ["string", "number", "integer", "boolean", "enum", "array"]
    if depth < 3:
        kinds.append("object")
    kind = draw(st.sampled_from(kinds))
    schema: dict = {}
    if kind == "enum":
        schema = {"type": "string", "enum": draw(st.lists(prose, min_size=1, max_size=5))}
    elif kind == "array":
        schema = {"type": "array", "items": draw(schemas(depth + 1))}
    elif kind == "object":
        props = draw(st.dictionaries(words, schemas(depth + 1), max_size=4))
        schema = {"type": "object", "properties": props}
        if props and draw(st.booleans()):
            schema["required"] = sorted(props)[: draw(st.integers(0, len(props)))]
    else:
        schema = {"type": kind}
        if kind in ("number", "integer") and draw(st.booleans()):
            schema["minimum"] = draw(st.integers(-10**6, 10**6))
    if draw(st.booleans()):
        schema["description"] = draw(prose)
    return schema


@st.composite
def tools(draw):
    function = {"name": draw(words), "parameters": {
        "type": "object", "properties": draw(st.dictionaries(words, schemas(), max_size=5))}}
    if draw(st.booleans()):
        function["description"] = draw(prose)
    return {"type": "function", "function": function}


@st.composite
def image_parts(draw):
    kind = draw(st.sampled_from(sorted(MAKERS)))
    width, height = draw(st.integers(1, 9000)), draw(st.integers(1, 9000))
    if kind == "gif":
        width, height = min(width, 65535), min(height, 65535)
    image = {"url": data_url(kind, MAKERS[kind](width, height))}
    detail = draw(st.sampled_from([None, "low", "high", "auto"]))
    if detail:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


@st.composite
def audio_parts(draw):
    seconds = draw(st.floats(0.05, 3.0))
    data = wav(seconds, draw(st.sampled_from([8000, 16000, 24000])), draw(st.sampled_from([1, 2])))
    return {"type": "input_audio",
            "input_audio": {"data": base64.b64encode(data).decode(), "format": "wav"}}


content_parts = st.one_of(prose.map(lambda t: {"type": "text", "text": t}), image_parts(),
                          audio_parts())


@st.composite
def messages(draw):
    role = draw(st.sampled_from(["system", "user", "assistant", "tool"]))
    message: dict = {"role": role}
    if role == "user":
        message["content"] = draw(st.one_of(prose, st.lists(content_parts, min_size=1,
                                                            max_size=4)))
        if draw(st.booleans()):
            message["name"] = draw(words)
    elif role == "assistant":
        message["content"] = draw(st.one_of(st.none(), prose))
        if message["content"] is None or draw(st.booleans()):
            message["tool_calls"] = [
                {"id": f"call_{draw(words)}", "type": "function",
                 "function": {"name": draw(words), "arguments": draw(prose)}}
                for _ in range(draw(st.integers(1, 3)))]
    elif role == "tool":
        message["content"] = draw(prose)
        message["tool_call_id"] = f"call_{draw(words)}"
    else:
        message["content"] = draw(prose)
    return message


@st.composite
def bodies(draw):
    body: dict = {"messages": draw(st.lists(messages(), min_size=1, max_size=5))}
    params: dict = {}
    if draw(st.booleans()):
        params["tools"] = draw(st.lists(tools(), min_size=1, max_size=4))
        params["tool_choice"] = draw(st.sampled_from(
            [None, "auto", "none", "required",
             {"type": "function", "function": {"name": params["tools"][0]["function"]["name"]}}]))
        if params["tool_choice"] is None:
            del params["tool_choice"]
    response_kind = draw(st.sampled_from([None, "text", "json_object", "json_schema"]))
    if response_kind == "json_schema":
        params["response_format"] = {"type": "json_schema", "json_schema": {
            "name": draw(words), "schema": draw(schemas()), "strict": True}}
    elif response_kind:
        params["response_format"] = {"type": response_kind}
    return body["messages"], params


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=bodies())
def test_estimate_is_never_below_the_billed_prompt(request):
    """1,000 generated requests, each against all 16 model rules."""
    messages_, params = request
    body = {"messages": messages_, **params}
    for provider, model in MODELS:
        estimate = estimate_request_prompt_tokens(messages=messages_, params=params,
                                                  provider=provider, upstream_model=model,
                                                  context_window=128_000)
        billed = billed_prompt_tokens(body, model=model, provider=provider)
        assert estimate >= billed, (provider, model, estimate, billed)


