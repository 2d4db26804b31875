"""Token bounds for non-text content parts: images per provider and model, audio, files.

Image rules (each provider's documentation; an image is billed from its pixel size):
- OpenAI tiles (gpt-4o, gpt-4.1, gpt-4-turbo: 85 + 170 per tile; gpt-4o-mini: 2,833 + 5,667 per
  tile): fit in 2048x2048, scale the shortest side down to 768, count 512px tiles; detail=low
  costs the base only. OpenAI "Images and vision", "Calculating costs".
- OpenAI patches (gpt-4.1-mini, gpt-4.1-nano, o4-mini): 32px patches, at most 1,536, times the
  model's multiplier (1.62, 2.46, 1.72); detail does not change the count. Same guide.
- Anthropic: width*height/750 after resizing to fit 1568px on the long edge and ~1,600 tokens
  (Claude 3 and 4 up to 4.6); newer models: 28px patches, up to 2,576px on the long edge.
  Anthropic "Vision", "Evaluate image size".
- Gemini: 258 when both sides are at most 384px, else 258 per 768x768 tile, after scaling to fit
  3072x3072 (Gemini API "Understand and count tokens"; Vertex AI input file requirements);
  Gemini 3 defaults to 1,120 tokens per image (media_resolution high).
The width and height come from a data: URL's header bytes; without them (a remote URL, an
unreadable header) an image costs the most its rule allows. A model no rule names costs the most
of every rule its provider has (every rule at all on OpenAI-compatible servers). A provider's
`billing_rules` in the registry (routing/providers.py) names the family of rules it follows.
"""

import base64
import binascii
import math
import re
import struct
from collections.abc import Callable

from routing.errors import UnboundedInput
from routing.providers import provider_spec

Size = tuple[int, int] | None
Rule = Callable[[Size, str], int]


# --- Image headers -----------------------------------------------------------------------------
def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers carry no length
            i += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        else:
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:  # extended: 24-bit canvas size minus one
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8L" and len(data) >= 25:  # lossless: two 14-bit sizes minus one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30:  # lossy: key frame header after the start code
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """Return (width, height) from a PNG, JPEG, GIF or WebP header, or None if unreadable."""
    size = None
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        size = struct.unpack(">II", data[16:24])
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        size = struct.unpack("<HH", data[6:10])
    elif data.startswith(b"\xff\xd8"):
        size = _jpeg_size(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        size = _webp_size(data)
    return size if size and size[0] > 0 and size[1] > 0 else None


def data_url_bytes(url: str, *, limit: int | None = None) -> bytes | None:
    """Return the bytes of a base64 `data:` URL (its first ~`limit` bytes when given), or None
    for any other URL."""
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        return None
    if limit is not None:
        payload = payload[:-(-limit // 3) * 4]
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        return None


HEADER_BYTES = 65536  # enough for every header but a JPEG behind large metadata segments


def data_url_dimensions(url: str) -> tuple[int, int] | None:
    """Return (width, height) of the image in a `data:` URL, reading no more than needed."""
    head = data_url_bytes(url, limit=HEADER_BYTES)
    size = image_dimensions(head) if head else None
    if size is None and head and len(head) >= HEADER_BYTES:
        data = data_url_bytes(url)
        size = image_dimensions(data) if data else None
    return size


def decoded_size(b64: str) -> int:
    """Return an upper bound on the bytes `b64` decodes to (without decoding it)."""
    return len(b64.rstrip("=")) * 3 // 4


# --- Image rules -------------------------------------------------------------------------------
def _fit(size: tuple[int, int], box: int) -> tuple[float, float]:
    scale = min(1.0, box / max(size))
    return size[0] * scale, size[1] * scale


def openai_tiles(base: int, per_tile: int) -> Rule:
    """Return OpenAI's tile rule: `base` plus `per_tile` per 512px tile of the scaled image."""
    def rule(size: Size, detail: str) -> int:
        if detail == "low":
            return base
        w, h = _fit(size or (768, 2048), 2048)  # 768x2048 needs the most tiles: 2x4
        if min(w, h) > 768:
            w, h = w * 768 / min(w, h), h * 768 / min(w, h)
        # ceil before counting: a rounding difference upstream can only lower the count
        return base + per_tile * math.ceil(math.ceil(w) / 512) * math.ceil(math.ceil(h) / 512)
    return rule


def openai_patches(multiplier: float) -> Rule:
    """Return OpenAI's patch rule: 32px patches, capped at 1,536, times `multiplier`."""
    def rule(size: Size, detail: str) -> int:
        patches = 1536 if size is None else min(
            1536, math.ceil(size[0] / 32) * math.ceil(size[1] / 32))
        return math.ceil(patches * multiplier)
    return rule


# Anthropic resizes images beyond "~1,600 tokens"; the largest size its docs list as kept as is,
# 784x1568 (1:2), costs 1,640.
ANTHROPIC_MAX_IMAGE_TOKENS = 1640


def anthropic_pixels(size: Size, detail: str) -> int:
    """Anthropic (Claude 3 and 4 up to 4.6): pixels/750, resized down to ~1,600 tokens."""
    if size is None:
        return ANTHROPIC_MAX_IMAGE_TOKENS
    return min(ANTHROPIC_MAX_IMAGE_TOKENS, math.ceil(size[0] * size[1] / 750))


def anthropic_patches(size: Size, detail: str) -> int:
    """Anthropic (newer models): 28px patches of the image fit to 2,576px on the long edge."""
    w, h = _fit(size or (2576, 2576), 2576)
    return math.ceil(math.ceil(w) / 28) * math.ceil(math.ceil(h) / 28)


def gemini_tiles(size: Size, detail: str) -> int:
    """Gemini 1.5 and 2.x: 258 per 768px tile (one tile when both sides are <= 384px)."""
    w, h = _fit(size or (3072, 3072), 3072)
    if w <= 384 and h <= 384:
        return 258
    return 258 * math.ceil(math.ceil(w) / 768) * math.ceil(math.ceil(h) / 768)


GEMINI_3_IMAGE_TOKENS = 1120  # media_resolution "high", Gemini 3's default for images


def gemini_3(size: Size, detail: str) -> int:
    """Gemini 3: a fixed budget per image (never below the tile rule, to stay a bound)."""
    return max(GEMINI_3_IMAGE_TOKENS, gemini_tiles(size, detail))


# (model pattern, rule) per family of billing rules; the first pattern that matches wins.
IMAGE_RULES: dict[str, list[tuple[re.Pattern, Rule]]] = {
    "openai": [
        (re.compile(r"^gpt-4o-mini"), openai_tiles(2833, 5667)),
        (re.compile(r"^gpt-4\.1-mini"), openai_patches(1.62)),
        (re.compile(r"^gpt-4\.1-nano"), openai_patches(2.46)),
        (re.compile(r"^o4-mini"), openai_patches(1.72)),
        (re.compile(r"^(gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-4\.5)"), openai_tiles(85, 170)),
    ],
    "anthropic": [
        (re.compile(r"^claude-(3|(haiku|sonnet|opus)-4(-[0-6])?(-\d{8})?(@|$))"),
         anthropic_pixels),
        (re.compile(r"^claude-"), anthropic_patches),
    ],
    "gemini": [
        (re.compile(r"^gemini-(1\.5|2\.0|2\.5)"), gemini_tiles),
        (re.compile(r"^gemini-"), gemini_3),
    ],
}
_ALL_RULES = [rule for rules in IMAGE_RULES.values() for _, rule in rules]


def billing_rules(provider: str) -> str:
    """Return the family of published billing rules `provider` follows ('' when unknown)."""
    spec = provider_spec(provider)
    return spec.billing_rules if spec is not None else ""


def image_token_bound(*, url: str, detail: str | None, provider: str,
                      upstream_model: str) -> int:
    """Return the most tokens one image can cost on `provider`'s `upstream_model`."""
    size = data_url_dimensions(url)
    detail = detail if detail in ("low", "high") else "auto"
    model = upstream_model.rsplit("/", 1)[-1].lower()  # "openai/gpt-4o", "models/gemini-…"
    rules = IMAGE_RULES.get(billing_rules(provider), [])
    for pattern, rule in rules:
        if pattern.search(model):
            return rule(size, detail)
    candidates = [rule for _, rule in rules] or _ALL_RULES
    return max(rule(size, detail) for rule in candidates)


# --- Audio and files -----------------------------------------------------------------------------
# Audio is billed per second of sound: OpenAI ~10 tokens/s (one per 100 ms of user audio),
# Gemini 32 tokens/s. A second of wav or mp3 (the formats input_audio accepts) takes at least
# 1,000 bytes (8 kbps, MP3's lowest bitrate; PCM WAV is >= 8,000 bytes/s), so the byte count
# bounds the seconds, and the seconds the tokens, at any bitrate a client can send.
AUDIO_TOKENS_PER_SECOND = 32
MIN_AUDIO_BYTES_PER_SECOND = 1000


def audio_token_bound(data_b64: str) -> int:
    """Return the most tokens a base64 audio clip can cost."""
    return math.ceil(decoded_size(data_b64) * AUDIO_TOKENS_PER_SECOND / MIN_AUDIO_BYTES_PER_SECOND)


def file_token_bound(file: dict, *, context_window: int | None, param: str) -> int:
    """Return the most tokens a `file` part can cost.

    A PDF is billed as its extracted text plus an image of each page, and compressed streams can
    hold far more text than their bytes, so the bytes bound nothing. What does bound it is the
    model's context window: a provider refuses, and does not bill, a prompt larger than that.
    The decoded size also counts, for a plain-text file beyond a misdeclared window.
    """
    if not isinstance(file, dict):
        return 0
    if file.get("file_data"):
        if context_window is None:
            raise UnboundedInput("A file part can only be bounded by the model's context "
                                 "window, which is unknown here.", param=f"{param}.file_data")
        data = str(file["file_data"]).partition(",")[2] or str(file["file_data"])
        return max(context_window, decoded_size(data))
    if file.get("file_id"):
        raise UnboundedInput(
            "File references (file_id) cannot be priced before the call: the gateway cannot "
            "see the file's size. Send the file inline as file_data instead.",
            param=f"{param}.file_id")
    return 0


def part_token_bound(part: dict, *, provider: str, upstream_model: str,
                     context_window: int | None, param: str) -> int:
    """Return the most tokens a non-text content part can cost (0 for text parts)."""
    kind = part.get("type")
    if kind in ("image_url", "image"):
        image = part.get("image_url")
        url = image.get("url", "") if isinstance(image, dict) else str(image or "")
        detail = image.get("detail") if isinstance(image, dict) else None
        return image_token_bound(url=url, detail=detail, provider=provider,
                                 upstream_model=upstream_model)
    if kind == "input_audio":
        audio = part.get("input_audio")
        return audio_token_bound(str(audio.get("data") or "")) if isinstance(audio, dict) else 0
    if kind == "file":
        return file_token_bound(part.get("file"), context_window=context_window,
                                param=f"{param}.file")
    return 0
