"""Per-request facts are computed once through the live gateway: the prompt's token estimate,
each profile's cooldown state and the caller's remaining budget."""

from collections import Counter

import httpx
import pytest

from budgets.models import UsageRecord
from routing import resilience, router, tokens, wiring
from tests.toolkit.fixtures import fast_resilience  # noqa: F401

TOOLS = [{"type": "function", "function": {
    "name": "lookup", "description": "Look a word up",
    "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}}}]
MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Tell me about foxes"}]


pytestmark = pytest.mark.usefixtures("fast_resilience")


@pytest.fixture(autouse=True)
def _quiet(settings, monkeypatch):
    settings.ENABLE_SEMANTIC_CACHE = False  # every request reaches routing and the provider
    monkeypatch.setenv("FACTS_FAKE_KEY", "sk-fake-key-for-request-facts")


@pytest.fixture
def chain(fake_profile):
    """An explicit model whose two fallbacks are other providers (other tokenizers, tool
    prompts and image rules): three prompt bounds to compute."""
    key = {"api_key_env": "FACTS_FAKE_KEY", "supports_tools": True}
    fake_profile("facts-claude", provider="anthropic", upstream="claude-haiku-4-5", **key)
    fake_profile("facts-openai", provider="openai", upstream="gpt-4o", **key)
    return fake_profile("facts-primary", fallbacks=["facts-claude", "facts-openai"],
                        supports_tools=True)


def _ask(live_gateway, api_key, model: str, **body) -> httpx.Response:
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {api_key.key}"},
                          json={"model": model, "messages": MESSAGES, **body})
    assert response.status_code == 200, response.text
    return response


def _spy_tokenizer(monkeypatch) -> list[str]:
    counted: list[str] = []
    real = tokens.tokenizer_count

    def count(text: str) -> int | None:
        counted.append(text)
        return real(text)

    monkeypatch.setattr(tokens, "tokenizer_count", count)
    return counted


def test_the_prompt_is_tokenized_once_for_routing_and_the_reservation(
        live_gateway, api_key, chain, monkeypatch):
    counted = _spy_tokenizer(monkeypatch)
    estimates: list[object] = []
    real_estimate = router.PromptEstimate

    def estimate(**kwargs):
        estimates.append(kwargs)
        return real_estimate(**kwargs)

    monkeypatch.setattr(router, "PromptEstimate", estimate)

    response = _ask(live_gateway, api_key, "facts-primary", tools=TOOLS)

    assert len(estimates) == 1
    # Every piece of the prompt (roles, contents, the tool's definition) was tokenized, once,
    # though three providers' bounds and context fits were asked for.
    pieces = {"system", "You are terse.", "user", "Tell me about foxes"}
    assert pieces <= set(counted)
    assert any('"lookup"' in text for text in counted)
    assert Counter(counted).most_common(1)[0][1] == 1
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.estimated_prompt_tokens == max(
        tokens.estimate_request_prompt_tokens(
            messages=MESSAGES, params={"tools": TOOLS}, provider=p, upstream_model=m,
            context_window=32000)
        for p, m in (("openai_compatible", "fake-ok"), ("anthropic", "claude-haiku-4-5"),
                     ("openai", "gpt-4o")))


def test_the_under_report_check_counts_the_prompt_through_routings_counts(
        live_gateway, api_key, fake_profile, monkeypatch):
    from llmops.gateway import usage

    fake_profile("facts-under", upstream="fake-lie-under")  # reports a tenth of its bill
    counted = _spy_tokenizer(monkeypatch)
    monkeypatch.setattr(usage, "tokenizer_count", tokens.tokenizer_count)

    response = _ask(live_gateway, api_key, "facts-under")

    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.prompt_tokens == record.estimated_prompt_tokens  # billed at our own count
    assert {"You are terse.", "Tell me about foxes"} <= set(counted)
    assert Counter(counted).most_common(1)[0][1] == 1


def _spy_cooldowns(monkeypatch, *, cooled_later: str = "") -> tuple[list[str], list[str]]:
    """Record the cooldown lookups of routing and of the upstream loop; the upstream loop sees
    `cooled_later` cooling (as if it had started cooling during the request)."""
    routed: list[str] = []
    called: list[str] = []
    real = resilience.cooldown_active

    async def routing_lookup(profile) -> bool:
        routed.append(profile.name)
        return await real(profile)

    async def upstream_lookup(profile) -> bool:
        called.append(profile.name)
        return profile.name == cooled_later or await real(profile)

    monkeypatch.setattr(router, "cooldown_active", routing_lookup)
    monkeypatch.setattr(resilience, "cooldown_active", upstream_lookup)
    return routed, called


def test_each_cooldown_is_looked_up_once(live_gateway, api_key, chain, monkeypatch):
    routed, called = _spy_cooldowns(monkeypatch)
    _ask(live_gateway, api_key, "facts-primary")
    assert sorted(routed) == ["facts-claude", "facts-openai", "facts-primary"]
    assert called == []  # the first attempt trusts routing's lookup of moments ago


def test_a_fallback_that_started_cooling_during_the_request_is_skipped(
        live_gateway, api_key, fake_profile, monkeypatch):
    fake_profile("facts-last")
    fake_profile("facts-next")
    fake_profile("facts-failing", upstream="fake-error-500",
                 fallbacks=["facts-next", "facts-last"])
    routed, called = _spy_cooldowns(monkeypatch, cooled_later="facts-next")

    response = _ask(live_gateway, api_key, "facts-failing")

    assert response.headers["x-llmops-model"] == "facts-last"
    assert Counter(routed) == {"facts-failing": 1, "facts-next": 1, "facts-last": 1}
    # after the failed attempts, the next profile is looked up again; the last one never is
    assert called == ["facts-next"]


def test_the_remaining_budget_is_read_once(live_gateway, api_key, simulated_profiles,
                                           monkeypatch):
    reads: list[object] = []
    real = wiring.budget_remaining

    def remaining(*, principal):
        reads.append(principal)
        return real(principal=principal)

    monkeypatch.setattr(wiring, "budget_remaining", remaining)
    _ask(live_gateway, api_key, "auto")
    assert len(reads) == 1
