"""What routing asks of other rooms goes through the callables named in settings."""

from decimal import Decimal

from routing import wiring
from routing.models import ModelProfile


def test_the_project_wires_the_providers_and_budgets(settings):
    assert settings.ROUTING_PROFILE_AVAILABLE == "llmops.providers.registry.profile_available"
    assert settings.ROUTING_BUDGET_REMAINING == "budgets.selectors.budget_remaining"


def test_availability_is_the_providers_answer(settings):
    settings.OPENAI_API_KEY = ""
    assert not ModelProfile(name="m", provider="openai").is_available()
    settings.OPENAI_API_KEY = "sk-test"
    assert ModelProfile(name="m", provider="openai").is_available()
    assert ModelProfile(name="s", provider="simulated").is_available()  # needs no key


def test_why_a_profile_is_unavailable_names_its_key_variable(settings, monkeypatch):
    settings.OPENAI_API_KEY = ""
    monkeypatch.delenv("TEAM_OWN_OPENAI_KEY", raising=False)
    assert (ModelProfile(name="m", provider="openai").unavailable_reason()
            == "OPENAI_API_KEY is not set")
    own = ModelProfile(name="o", provider="openai", api_key_env="TEAM_OWN_OPENAI_KEY")
    assert own.unavailable_reason() == "TEAM_OWN_OPENAI_KEY is not set"
    monkeypatch.setenv("TEAM_OWN_OPENAI_KEY", "sk-own")
    assert own.unavailable_reason() == ""
    assert ModelProfile(name="s", provider="simulated").unavailable_reason() == ""


def test_a_provider_the_registry_lacks_is_unavailable():
    profile = ModelProfile(name="x", provider="no-such-provider")
    assert not profile.is_available()
    assert profile.unavailable_reason() == "its provider 'no-such-provider' is not registered"


def test_a_hook_refusal_without_a_missing_key_says_not_configured(settings):
    settings.ROUTING_PROFILE_AVAILABLE = "tests.unit.routing.test_wiring.never_available"
    assert (ModelProfile(name="s", provider="simulated").unavailable_reason()
            == "its provider 'simulated' is not configured")


def test_hooks_follow_the_settings(settings):
    seen = []
    settings.ROUTING_PROFILE_AVAILABLE = "tests.unit.routing.test_wiring.never_available"
    settings.ROUTING_BUDGET_REMAINING = "tests.unit.routing.test_wiring.ten_dollars"
    assert not wiring.profile_available(ModelProfile(name="m", provider="simulated"))
    assert wiring.budget_remaining(principal=seen) == Decimal("10")
    assert seen == ["asked"]


def test_unset_hooks_mean_available_and_unlimited(settings):
    settings.ROUTING_PROFILE_AVAILABLE = ""
    settings.ROUTING_BUDGET_REMAINING = ""
    assert wiring.profile_available(ModelProfile(name="m", provider="openai"))
    assert wiring.budget_remaining(principal=None) is None


def never_available(profile) -> bool:
    return False


def ten_dollars(*, principal) -> Decimal:
    principal.append("asked")
    return Decimal("10")
