"""The provider registry: built-in entries, extra entries from settings, choices, capabilities."""

import pytest
from django.core.exceptions import ValidationError

from routing.models import ModelProfile
from routing.providers import (
    PROVIDERS,
    ProviderSpec,
    provider_choices,
    provider_registry,
    provider_spec,
)

EXTRA = ProviderSpec(name="extra", label="Extra Co", adapter="tests.unit.routing.Nothing",
                     catalog_names=("extra",), key_setting="EXTRA_API_KEY")
ANTHROPIC_AGAIN = ProviderSpec(name="anthropic", label="Anthropic (through a proxy)",
                               adapter="tests.unit.routing.Nothing", needs_key=False)
NOT_A_SPEC = {"name": "dict"}


class TestBuiltIn:
    def test_every_entry_has_a_unique_name_and_an_adapter(self):
        names = [spec.name for spec in PROVIDERS]
        assert len(names) == len(set(names))
        assert all(spec.adapter.startswith("llmops.providers.") for spec in PROVIDERS)

    def test_keys_and_endpoints_operators_know(self):
        assert provider_spec("openai").key_setting == "OPENAI_API_KEY"
        assert provider_spec("gemini").key_setting == "GEMINI_API_KEY"
        assert provider_spec("anthropic").key_setting == "ANTHROPIC_API_KEY"
        assert provider_spec("openai").base_url == "https://api.openai.com/v1"
        assert not provider_spec("openai_compatible").base_url
        assert not provider_spec("simulated").needs_key

    def test_unknown_names(self):
        assert provider_spec("nope") is None
        assert provider_spec(None) is None
        assert provider_spec("") is None

    def test_choices_follow_the_registry(self):
        assert ("openai", "OpenAI") in provider_choices()
        assert [name for name, _ in provider_choices()] == [spec.name for spec in PROVIDERS]


class TestExtraProviders:
    def test_an_extra_entry_is_added_and_removed_with_the_setting(self, settings):
        settings.LLMOPS_EXTRA_PROVIDERS = ["tests.unit.routing.test_providers.EXTRA"]
        assert provider_spec("extra") is EXTRA
        assert ("extra", "Extra Co") in provider_choices()
        settings.LLMOPS_EXTRA_PROVIDERS = []
        assert provider_spec("extra") is None

    def test_an_entry_with_a_built_in_name_replaces_it(self, settings):
        settings.LLMOPS_EXTRA_PROVIDERS = ["tests.unit.routing.test_providers.ANTHROPIC_AGAIN"]
        assert provider_spec("anthropic") is ANTHROPIC_AGAIN
        assert list(provider_registry()) == [spec.name for spec in PROVIDERS]

    def test_only_specs_are_accepted(self, settings):
        settings.LLMOPS_EXTRA_PROVIDERS = ["tests.unit.routing.test_providers.NOT_A_SPEC"]
        with pytest.raises(TypeError, match="NOT_A_SPEC is not a ProviderSpec"):
            provider_registry()


class TestProfileValidation:
    def _profile(self, **fields) -> ModelProfile:
        return ModelProfile(name="p", upstream_model="p", input_price_per_token=0,
                            output_price_per_token=0, **fields)

    def test_a_profile_cannot_claim_what_its_provider_cannot_carry(self):
        with pytest.raises(ValidationError) as raised:
            self._profile(provider="simulated", supports_tools=True,
                          supports_vision=True).full_clean(validate_unique=False)
        assert set(raised.value.message_dict) == {"supports_tools", "supports_vision"}
        self._profile(provider="openai", supports_tools=True,
                      supports_vision=True).full_clean(validate_unique=False)

    def test_an_unknown_provider_is_refused_by_its_choices(self):
        with pytest.raises(ValidationError) as raised:
            self._profile(provider="nope").full_clean(validate_unique=False)
        assert "provider" in raised.value.message_dict

    def test_an_extra_provider_is_a_valid_choice(self, settings):
        settings.LLMOPS_EXTRA_PROVIDERS = ["tests.unit.routing.test_providers.EXTRA"]
        self._profile(provider="extra").full_clean(validate_unique=False)


@pytest.mark.django_db
def test_the_admin_offers_every_registered_provider(admin_client, settings):
    settings.LLMOPS_EXTRA_PROVIDERS = ["tests.unit.routing.test_providers.EXTRA"]
    page = admin_client.get("/admin/routing/modelprofile/add/").content.decode()
    for name, label in provider_choices():
        assert f'<option value="{name}">{label}</option>' in page
    assert "Extra Co" in page
