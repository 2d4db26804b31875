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
