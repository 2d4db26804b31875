"""Media bounds: each provider's image rule with its documented examples, the header parsers,
audio and file bounds, and the refusal of what cannot be bounded."""

import base64
import math
import struct

import pytest

from routing.errors import UnboundedInput
from routing.media import (
    audio_token_bound,
    data_url_bytes,
    file_token_bound,
    image_dimensions,
    image_token_bound,
)
from routing.tokens import estimate_request_prompt_tokens
from tests.toolkit.billing import billed_audio_tokens, billed_image_tokens
from tests.unit.routing.test_tokens_bound import gif, jpeg, png, wav, webp


def url(kind: str, width: int, height: int) -> str:
    maker = {"png": png, "jpeg": jpeg, "gif": gif, "webp": webp}[kind]
    return f"data:image/{kind};base64,{base64.b64encode(maker(width, height)).decode()}"


def tokens(provider: str, model: str, size: tuple[int, int] | None, detail: str | None = None):
    image = url("png", *size) if size else "https://example.com/cat.png"
    return image_token_bound(url=image, detail=detail, provider=provider, upstream_model=model)


class TestHeaders:
    @pytest.mark.parametrize("kind", ["png", "jpeg", "gif", "webp"])
    @pytest.mark.parametrize("size", [(1, 1), (640, 480), (4000, 3000), (16383, 2)])
    def test_each_format_reads_its_size(self, kind, size):
        maker = {"png": png, "jpeg": jpeg, "gif": gif, "webp": webp}[kind]
        assert image_dimensions(maker(*size)) == size

    def test_jpeg_skips_segments_before_the_frame_header(self):
        exif = b"\xff\xe1" + struct.pack(">H", 2 + 5000) + b"\x00" * 5000
        tables = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" * 65
        data = jpeg(1234, 567)
        assert image_dimensions(data[:2] + exif + tables + data[2:]) == (1234, 567)

    def test_progressive_jpeg(self):
        data = jpeg(800, 600).replace(b"\xff\xc0", b"\xff\xc2")
        assert image_dimensions(data) == (800, 600)

    def test_webp_lossy_and_lossless(self):
        lossy = (b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 4 + b"\x00\x00\x00\x9d\x01\x2a"
                 + struct.pack("<HH", 300, 200))
        assert image_dimensions(lossy) == (300, 200)
        bits = (300 - 1) | ((200 - 1) << 14)
        lossless = b"RIFF\x00\x00\x00\x00WEBPVP8L" + b"\x00" * 4 + b"\x2f" + struct.pack(
            "<I", bits)
        assert image_dimensions(lossless) == (300, 200)

    @pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff",
                                      png(0, 10), b"GIF89a"])
    def test_unreadable_or_truncated_headers_give_none(self, data):
        assert image_dimensions(data) is None

    def test_data_urls_only(self):
        assert data_url_bytes("data:image/png;base64,iVBORw0KGgo=") == b"\x89PNG\r\n\x1a\n"
        assert data_url_bytes("https://example.com/a.png") is None
        assert data_url_bytes("data:image/png;base64,***") in (None, b"")


class TestOpenAITiles:
    # OpenAI's "Calculating costs" examples for gpt-4o-class models.
    def test_documented_examples(self):
        assert tokens("openai", "gpt-4o", (1024, 1024), "high") == 765
        assert tokens("openai", "gpt-4o", (2048, 4096), "high") == 1105
        assert tokens("openai", "gpt-4o", (4096, 8192), "low") == 85

    def test_auto_and_missing_detail_count_as_high(self):
        assert tokens("openai", "gpt-4.1", (1024, 1024)) == 765
        assert tokens("openai", "gpt-4-turbo", (1024, 1024), "auto") == 765

    def test_small_images_are_not_scaled_up(self):
        assert tokens("openai", "gpt-4o", (128, 64), "high") == 85 + 170

    def test_gpt_4o_mini_bills_about_33_times_more(self):
        assert tokens("openai", "gpt-4o-mini", (1024, 1024), "high") == 2833 + 4 * 5667
        assert tokens("openai", "gpt-4o-mini", None, "high") == 2833 + 8 * 5667  # 48,169
        assert tokens("openai", "gpt-4o-mini", None, "low") == 2833

    def test_unknown_size_is_the_most_tiles(self):
        assert tokens("openai", "gpt-4o", None) == 85 + 8 * 170


class TestOpenAIPatches:
    def test_patches_times_the_model_multiplier(self):
        # 1024x1024: 32 x 32 = 1,024 patches
        assert tokens("openai", "gpt-4.1-mini", (1024, 1024)) == math.ceil(1024 * 1.62)
        assert tokens("openai", "gpt-4.1-nano", (1024, 1024)) == math.ceil(1024 * 2.46)
        assert tokens("openai", "o4-mini", (1024, 1024)) == math.ceil(1024 * 1.72)

    def test_capped_at_1536_patches_and_detail_does_not_matter(self):
        assert tokens("openai", "gpt-4.1-mini", (1800, 2400), "low") == math.ceil(1536 * 1.62)
        assert tokens("openai", "o4-mini", None) == math.ceil(1536 * 1.72)


class TestAnthropic:
    # Anthropic's vision docs: tokens = width * height / 750, images resized to ~1,600 tokens.
    def test_documented_examples(self):
        assert tokens("anthropic", "claude-sonnet-4-5", (200, 200)) == 54
        assert tokens("anthropic", "claude-haiku-4-5", (1000, 1000)) == 1334
        assert tokens("anthropic", "claude-3-5-sonnet-20241022", (1092, 1092)) == 1590

    def test_large_or_unknown_images_cost_the_resized_most(self):
        assert tokens("anthropic", "claude-sonnet-4-5", (8000, 8000)) == 1640
        assert tokens("anthropic", "claude-sonnet-4-20250514", None) == 1640

    def test_newer_models_use_28px_patches_up_to_2576px(self):
        assert tokens("anthropic", "claude-opus-4-7", (1000, 1000)) == 36 * 36
        assert tokens("anthropic", "claude-opus-4-7", None) == 92 * 92


class TestGemini:
    def test_one_tile_for_small_images_then_768px_tiles(self):
        assert tokens("gemini", "gemini-2.5-flash", (384, 384)) == 258
        assert tokens("gemini", "gemini-2.0-flash", (1600, 900)) == 258 * 3 * 2
        assert tokens("gemini", "gemini-2.5-flash", (20000, 20000)) == 258 * 4 * 4  # 3072 box

    def test_gemini_3_budget(self):
        assert tokens("gemini", "gemini-3-pro-preview", (100, 100)) == 1120


class TestUnknownModels:
    def test_openai_compatible_takes_the_dearest_known_rule(self):
        assert tokens("openai_compatible", "llava-v1.6", (1024, 1024)) == 2833 + 4 * 5667
        assert tokens("openai", "gpt-9", None) == 2833 + 8 * 5667

    def test_provider_prefixes_are_ignored(self):
        assert tokens("openai", "openai/gpt-4o", (1024, 1024), "high") == 765


@pytest.mark.parametrize(("provider", "model"), [
    ("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1-nano"),
    ("anthropic", "claude-haiku-4-5"), ("anthropic", "claude-opus-4-7"),
    ("gemini", "gemini-2.5-flash")])
@pytest.mark.parametrize("size", [(1, 1), (33, 4000), (767, 769), (1568, 784), (9000, 300)])
@pytest.mark.parametrize("detail", ["low", "high"])
def test_every_rule_bounds_the_billing_counter(provider, model, size, detail):
    image = url("jpeg", *size)
    assert image_token_bound(url=image, detail=detail, provider=provider,
                             upstream_model=model) >= billed_image_tokens(
        image, detail=detail, model=model, provider=provider)


class TestAudio:
    def test_a_megabyte_is_bounded_far_above_its_11_text_tokens(self):
        data = base64.b64encode(b"\x00" * 1_000_000).decode()
        assert audio_token_bound(data) == 32_000

    @pytest.mark.parametrize("rate", [8000, 16000, 44100])
    def test_bounds_real_wav_seconds_on_every_provider(self, rate):
        clip = wav(2.5, rate, 1)
        bound = audio_token_bound(base64.b64encode(clip).decode())
        for provider in ("openai", "gemini", "anthropic"):
            assert bound >= billed_audio_tokens(clip, provider=provider)

    def test_an_8_kbps_mp3_is_still_bounded(self):
        seconds = 60
        clip = b"\xff\xf3" + b"\x00" * (1000 * seconds - 2)  # MPEG-2.5 layer III, 8 kbps
        assert audio_token_bound(base64.b64encode(clip).decode()) >= 32 * seconds


class TestFiles:
    def test_file_data_is_bounded_by_the_context_window(self):
        pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.7 ...").decode()
        assert file_token_bound({"file_data": pdf, "filename": "a.pdf"}, context_window=128_000,
                                param="messages[0].content[0]") == 128_000

    def test_file_data_larger_than_the_window_counts_its_bytes(self):
        text = base64.b64encode(b"x" * 30_000).decode()
        assert file_token_bound({"file_data": text}, context_window=8192, param="p") >= 30_000

    def test_file_id_cannot_be_bounded(self):
        with pytest.raises(UnboundedInput) as raised:
            file_token_bound({"file_id": "file-abc"}, context_window=128_000,
                             param="messages[1].content[2].file")
        assert raised.value.param == "messages[1].content[2].file.file_id"

    def test_file_data_without_a_context_window_cannot_be_bounded(self):
        with pytest.raises(UnboundedInput):
            file_token_bound({"file_data": "QUJD"}, context_window=None, param="p")

    def test_the_request_names_the_offending_part(self):
        messages = [{"role": "user", "content": "hi"}, {"role": "user", "content": [
            {"type": "text", "text": "summarise"},
            {"type": "file", "file": {"file_id": "file-abc"}}]}]
        with pytest.raises(UnboundedInput) as raised:
            estimate_request_prompt_tokens(messages=messages, params={}, provider="openai",
                                           upstream_model="gpt-4o", context_window=128_000)
        assert raised.value.param == "messages[1].content[1].file.file_id"


def test_a_jpeg_header_behind_large_metadata_is_still_found():
    exif = b"".join(b"\xff\xe1" + struct.pack(">H", 65000) + b"\x00" * 64998 for _ in range(3))
    data = jpeg(5000, 4000)
    image = "data:image/jpeg;base64," + base64.b64encode(data[:2] + exif + data[2:]).decode()
    assert image_token_bound(url=image, detail="high", provider="anthropic",
                             upstream_model="claude-opus-4-7") == 92 * 74
