"""Model profiles: what each upstream model costs, how good and fast it is, how to reach it."""

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    GEMINI = "gemini", "Google Gemini (OpenAI-compatible endpoint)"
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server (vLLM, Ollama, llama.cpp)"
    SIMULATED = "simulated", "Simulated (demo and benchmarks, no real model)"


class Tier(models.TextChoices):
    PREMIUM = "premium", "Premium"
    STANDARD = "standard", "Standard"
    EFFICIENT = "efficient", "Efficient"


def _price_field(help_text: str, **kwargs) -> models.DecimalField:
    return models.DecimalField(
        max_digits=20, decimal_places=15, validators=[MinValueValidator(Decimal(0))],
        help_text=help_text, **kwargs,
    )


class ModelProfileQuerySet(models.QuerySet):
    def enabled(self) -> "ModelProfileQuerySet":
        return self.filter(enabled=True)


class ModelProfile(models.Model):
    """One model a client can ask for by `name`, or that `auto` routing may choose."""

    name = models.CharField(max_length=100, unique=True, help_text="Public model id clients send.")
    provider = models.CharField(max_length=32, choices=Provider.choices)
    upstream_model = models.CharField(max_length=200, help_text="Model id sent to the provider.")
    base_url = models.URLField(blank=True, help_text="Empty: the provider's public endpoint.")
    api_key_env = models.CharField(
        max_length=100, blank=True,
        help_text="Environment variable holding the provider key (empty: provider default).",
    )
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STANDARD)

    input_price_per_token = _price_field("USD per prompt token.")
    output_price_per_token = _price_field("USD per completion token.")
    cached_input_price_per_token = _price_field(
        "USD per cached prompt token (empty: same as input).", null=True, blank=True)
    reasoning_price_per_token = _price_field(
        "USD per reasoning token (empty: same as output).", null=True, blank=True)

    context_window = models.PositiveIntegerField(default=8192)
    max_output_tokens = models.PositiveIntegerField(default=4096)
    quality_score = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Prior quality in [0, 1], used until learned predictions exist.")
    typical_latency_ms = models.PositiveIntegerField(default=1000, help_text="Static latency hint.")

    supports_streaming = models.BooleanField(default=True)
    supports_tools = models.BooleanField(default=False)
    supports_json_mode = models.BooleanField(default=False)
    supports_vision = models.BooleanField(default=False)

    enabled = models.BooleanField(default=True)
    options = models.JSONField(
        default=dict, blank=True,
        help_text="Adapter options, e.g. the simulated provider's latency_ms and chunk_interval_ms.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelProfileQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
