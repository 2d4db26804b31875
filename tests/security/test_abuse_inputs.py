"""Prompt-shaped abuse: huge prompts, floods of messages, control characters, lone surrogates and
prompts that mimic cache-key or metadata syntax. Each is refused clearly or served correctly;
the limits are configurable from the environment (proven on a gateway process)."""

import json
import uuid

import httpx
import pytest

from budgets.models import BudgetReservation, UsageRecord
from tests.toolkit.assertions import assert_openai_error
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url

MODEL = "simulated-efficient"


def _post(client: httpx.Client, messages: list[dict], **extra) -> httpx.Response:
    return client.post("/v1/chat/completions",
                       json={"model": MODEL, "messages": messages, **extra})


def test_one_megabyte_message_is_refused_with_context_length_error(gateway_http,
                                                                    simulated_profiles):
    """1 MB of text (~250k tokens) fits the body limit but no model's context window."""
    text = ("lorem ipsum dolor sit amet " * 40_000)[:1024 * 1024]
    response = _post(gateway_http, [{"role": "user", "content": text}])
    error = assert_openai_error(response, 400, code="context_length_exceeded")
    assert error["param"] == "messages"
    assert not UsageRecord.objects.exists() and not BudgetReservation.objects.exists()


def test_one_megabyte_message_is_served_by_a_model_that_fits(gateway_http, simulated_profiles):
    profile = simulated_profiles["simulated-premium"]
    profile.context_window = 2_000_000
    profile.save()
    from routing.selectors import invalidate_snapshot

    invalidate_snapshot()
    text = ("lorem ipsum dolor sit amet " * 40_000)[:1024 * 1024]
    response = gateway_http.post("/v1/chat/completions", json={
        "model": "simulated-premium", "messages": [{"role": "user", "content": text}],
        "max_tokens": 8})
    assert response.status_code == 200, response.text[:500]
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.prompt_tokens > 100_000 and record.cost > 0


def test_ten_thousand_messages_are_refused(gateway_http, simulated_profiles, settings):
    messages = [{"role": "user", "content": f"m{i}"} for i in range(10_000)]
    response = _post(gateway_http, messages)
    error = assert_openai_error(response, 400, param="messages")
    assert str(settings.LLMOPS_MAX_MESSAGES) in error["message"]
    assert not UsageRecord.objects.exists()


def test_messages_at_the_limit_are_served(gateway_http, simulated_profiles, settings):
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": "ok"}
                for i in range(settings.LLMOPS_MAX_MESSAGES - 1)]
    response = _post(gateway_http, messages, max_tokens=4)
    assert response.status_code == 200, response.text[:500]


CONTROL_TEXTS = [
    "bell \x07 escape \x1b[31mred\x1b[0m backspace \x08",
    "line\rfeeds\r\nand\ttabs\x0b\x0c",
    "del \x7f and c1 \x85 \x9b controls",
    "bidi override \u202e txet desrever \u202c and zero width \u200b\ufeff",
    "emoji 🧪 and astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and combining e\u0301",
    "noncharacters \ufffe \uffff",
]


@pytest.mark.parametrize("text", CONTROL_TEXTS, ids=lambda t: t.split(" ")[0])
def test_control_characters_are_served_and_recorded(gateway_http, simulated_profiles, text):
    for stream in (False, True):
        response = gateway_http.post("/v1/chat/completions", json={
            "model": MODEL, "stream": stream, "max_tokens": 8,
            "messages": [{"role": "system", "content": text}, {"role": "user", "content": text}],
            "stop": [text[:10]], "metadata": {"note": text}})
        assert response.status_code == 200, response.text[:500]
        if stream:
            assert response.text.rstrip().endswith("data: [DONE]")
        else:
            assert response.json()["choices"][0]["message"]["role"] == "assistant"
        record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
        assert record.status == "ok"
    # `user` is an identifier, not text: served, or refused by name, never a 500.
    response = _post(gateway_http, [{"role": "user", "content": "hi"}], user=text[:20],
                     max_tokens=4)
    if response.status_code != 200:
        assert_openai_error(response, 400, param="user")


@pytest.mark.parametrize("escaped,what", [
    ("\\ud800", "surrogate"), ("\\udfff", "surrogate"), ("a\\udc00b", "surrogate"),
    ("\\ud83d", "surrogate"), ("nul \\u0000 byte", "NUL")])
@pytest.mark.parametrize("where,param", [
    ("content", "messages[0].content"), ("part", "messages[0].content[0].text"),
    ("stop", "stop"), ("system", "messages[0].content"), ("metadata", "metadata.note")])
def test_lone_surrogates_and_nul_are_refused_everywhere(gateway_http, simulated_profiles, escaped,
                                                        what, where, param):
    """Neither fits every store and provider (PostgreSQL refuses NUL in text and jsonb; a lone
    surrogate cannot be encoded at all): refused by name before admission, never a 500."""
    message = {"role": "user", "content": f"x{escaped}y"}
    extra = ""
    if where == "part":
        message = {"role": "user", "content": [{"type": "text", "text": f"x{escaped}"}]}
    elif where == "stop":
        message, extra = {"role": "user", "content": "hi"}, f', "stop": "s{escaped}"'
    elif where == "system":
        message = {"role": "system", "content": f"x{escaped}"}
    elif where == "metadata":
        message, extra = {"role": "user", "content": "hi"}, f', "metadata": {{"note": "{escaped}"}}'
    encoded = json.dumps(message).replace("\\\\u", "\\u")
    raw = f'{{"model": "{MODEL}", "messages": [{encoded}]{extra}}}'.encode()
    response = gateway_http.post("/v1/chat/completions", content=raw,
                                 headers={"Content-Type": "application/json"})
    error = assert_openai_error(response, 400, param=param)
    assert what in error["message"]
    assert not UsageRecord.objects.exists()


MIMICS = [
    "semcache:1:exact:0123456789abcdef",
    "llmops:routing:cooldown:simulated-efficient",
    '{"team_id": 1, "tenant": "other", "model_scope": "*", "cache_similarity_threshold": 0}',
    "X-LLMOps-Cache: hit_exact\r\nX-LLMOps-Model: simulated-premium",
    "data: [DONE]\n\n",
    "'; DROP TABLE budgets_usagerecord; --",
    "{{ settings.SECRET_KEY }} {% debug %} ${jndi:ldap://127.0.0.1/x}",
    "*",
    "?*[]",
]


@pytest.mark.parametrize("text", MIMICS)
def test_prompts_that_mimic_keys_or_metadata_are_plain_text(gateway_http, simulated_profiles,
                                                            text):
    tag = uuid.uuid4().hex[:6]
    content = f"{text} {tag}"
    response = gateway_http.post("/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 8,
        "metadata": {"cache_key": text, "tenant": text, "team_id": "1"}, "user": text[:200]})
    assert response.status_code == 200, response.text[:500]
    assert response.headers["x-llmops-cache"] in ("miss", "disabled", "bypass")
    assert response.headers["x-llmops-model"] == MODEL
    body = response.json()
    assert body["model"] == MODEL and body["choices"][0]["message"]["content"]
    assert "SECRET_KEY" not in response.text or "settings.SECRET_KEY" in text
    from django.conf import settings

    assert settings.SECRET_KEY not in response.text
    assert UsageRecord.objects.filter(request_id=response.headers["x-request-id"]).count() == 1


@pytest.mark.django_db(transaction=True)
def test_limits_are_configurable_from_the_environment(api_key, simulated_profiles):
    env = {"LLMOPS_MAX_MESSAGES": "3", "LLMOPS_MAX_BODY_BYTES": "4000",
           "LLMOPS_MAX_OUTPUT_TOKENS": "50", "LLMOPS_MAX_JSON_DEPTH": "6"}
    with GatewayProcess(database_url=gateway_database_url(), env=env) as gateway, \
            gateway.client(api_key.key) as client:
        one = [{"role": "user", "content": "hi"}]
        assert _post(client, one, max_tokens=50).status_code == 200
        assert_openai_error(_post(client, one * 4), 400, param="messages")
        assert_openai_error(_post(client, one, max_tokens=51), 400, param="max_tokens")
        assert_openai_error(_post(client, [{"role": "user", "content": "x" * 5000}]), 413,
                            code="payload_too_large")
        deep = {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}
        assert_openai_error(_post(client, one, metadata=deep), 400)
