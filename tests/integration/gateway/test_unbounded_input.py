"""A part whose billed tokens cannot be bounded before the call is a clear 400, not a guess."""

import base64

import httpx
import pytest

from budgets.models import UsageRecord
from tests.toolkit.assertions import assert_openai_error


@pytest.fixture
def profile(fake_profile, settings):
    settings.ENABLE_SEMANTIC_CACHE = False
    return fake_profile("files-model", supports_vision=True)


def _post(live_gateway, key: str, content: list[dict]) -> httpx.Response:
    return httpx.post(f"{live_gateway.url}/v1/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": "files-model",
                            "messages": [{"role": "user", "content": content}]})


def test_a_file_reference_is_refused_with_its_param(live_gateway, api_key, profile,
                                                    fake_provider):
    response = _post(live_gateway, api_key.key, [
        {"type": "text", "text": "Summarise this report."},
        {"type": "file", "file": {"file_id": "file-abc123"}}])

    error = assert_openai_error(response, 400, code="unbounded_input",
                                param="messages[0].content[1].file.file_id")
    assert error["type"] == "invalid_request_error"
    assert "file_data" in error["message"]
    assert fake_provider.requests == []
    assert not UsageRecord.objects.exists()


def test_inline_file_and_audio_are_admitted_with_a_bound(live_gateway, api_key, profile,
                                                        fake_provider):
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.7\n" * 100).decode()
    audio = base64.b64encode(b"RIFF" + b"\x00" * 40_000).decode()
    response = _post(live_gateway, api_key.key, [
        {"type": "text", "text": "Summarise both."},
        {"type": "file", "file": {"file_data": pdf, "filename": "r.pdf"}},
        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}])

    assert response.status_code == 200, response.text
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    # the file is bounded by the model's context window, the audio by its bytes
    assert record.estimated_prompt_tokens >= profile.context_window + 40_000 * 32 // 1000
