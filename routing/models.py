"""Model profiles: what each upstream model costs, how good and fast it is, how to reach it."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from routing.providers import ProviderSpec, provider_choices, provider_spec


class Tier(models.TextChoices):
    PREMIUM = "premium", "Premium"
    STANDARD = "standard", "Standard"
    EFFICIENT = "efficient", "Efficient"


def _price_field(help_text: str, **kwargs) -> models.DecimalField:
    return models.DecimalField(
        max_digits=20, decimal_places=15, validators=[MinValueValidator(Decimal(0))],
        help_text=help_text, **kwargs,
    )


class Mode(models.TextChoices):
    """What a profile serves: chat (completions, responses, messages) or embeddings. The two
    never stand in for each other: chat routing never picks an embedding profile, and
    `/v1/embeddings` serves only embedding profiles."""

    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"


class ModelProfileQuerySet(models.QuerySet):
    def enabled(self) -> "ModelProfileQuerySet":
        return self.filter(enabled=True)


class ModelProfile(models.Model):
    """One model a client can ask for by `name`, or that `auto` routing may choose."""

    name = models.CharField(max_length=100, unique=True, help_text="Public model id clients send.")
    # Choices come from the provider registry (routing/providers.py), read when validating, so
    # a provider added there needs no migration.
    provider = models.CharField(max_length=32, choices=provider_choices)
    upstream_model = models.CharField(max_length=200, help_text="Model id sent to the provider.")
    base_url = models.URLField(blank=True, help_text="Empty: the provider's public endpoint.")
    api_key_env = models.CharField(
        max_length=100, blank=True,
        help_text="Environment variable holding the provider key (empty: provider default).",
    )
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STANDARD)
    mode = models.CharField(
        max_length=16, choices=Mode.choices, default=Mode.CHAT,
        help_text="chat: served by the chat endpoints and routing; embedding: served by "
                  "/v1/embeddings only, priced per input token (its output prices stay 0).")

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

    catalog_key = models.CharField(
        max_length=200, blank=True,
        help_text="Entry in the price catalog (sync_prices) when it differs from the upstream "
                  "id, e.g. 'gemini/gemini-2.5-flash'; a simulated profile names the model whose "
                  "prices it mirrors.")
    fallbacks = models.JSONField(
        default=list, blank=True,
        help_text="Ordered profile names to try when this one fails (e.g. [\"gpt-4.1-mini\"]).")

    # Observed behaviour: written by routing.services.profiles_refresh_observed from the ledger,
    # never typed in (read-only in admin).
    observed_latency_p50_ms = models.PositiveIntegerField(null=True, blank=True)
    observed_latency_p95_ms = models.PositiveIntegerField(null=True, blank=True)
    observed_ttft_p50_ms = models.PositiveIntegerField(null=True, blank=True)
    observed_error_rate = models.FloatField(null=True, blank=True)
    observed_samples = models.PositiveIntegerField(default=0)
    observed_at = models.DateTimeField(null=True, blank=True)

    enabled = models.BooleanField(default=True)
    options = models.JSONField(
        default=dict, blank=True,
        help_text="Adapter options, e.g. the simulated provider's latency_ms and "
                  "chunk_interval_ms.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelProfileQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse a capability the provider's wire format lacks (routing/providers.py), and an
        embedding profile that could bill output (its reservation counts input tokens only)."""
        spec = provider_spec(self.provider)
        if spec is None:
            return  # the choices check names an unknown provider
        if self.is_embedding:
            self._clean_embedding(spec)
            return
        if not spec.chat:
            raise ValidationError({"mode": f"{spec.label} serves embeddings only."})
        lacking = {name: label for name, label, claimed, possible in (
            ("supports_streaming", "streaming", self.supports_streaming, spec.streams),
            ("supports_tools", "tools", self.supports_tools, spec.tools),
            ("supports_vision", "images", self.supports_vision, spec.images),
        ) if claimed and not possible}
        if lacking:
            raise ValidationError({name: f"{spec.label} does not support {label}."
                                   for name, label in lacking.items()})

    def _clean_embedding(self, spec: ProviderSpec) -> None:
        errors = {}
        if not spec.embeddings:
            errors["provider"] = f"{spec.label} does not serve embeddings."
        for name in ("output_price_per_token", "reasoning_price_per_token"):
            if getattr(self, name) not in (None, "") and Decimal(getattr(self, name)) != 0:
                errors[name] = "An embedding model bills input tokens only: leave this 0."
        if errors:
            raise ValidationError(errors)

    @property
    def is_embedding(self) -> bool:
        """Return whether this profile serves `/v1/embeddings` (and nothing else)."""
        return self.mode == Mode.EMBEDDING

    @property
    def latency_ms(self) -> int:
        """Return the latency to plan with: observed p95 when known, else the static hint."""
        return self.observed_latency_p95_ms or self.typical_latency_ms

    def is_available(self) -> bool:
        """Return whether the gateway holds what it needs to call this model (its key): the
        providers answer, through ROUTING_PROFILE_AVAILABLE (routing/wiring.py)."""
        from routing.wiring import profile_available

        return profile_available(self)

    def unavailable_reason(self) -> str:
        """Return why the gateway cannot call this model now ("OPENAI_API_KEY is not set"), or
        '' when it can (routing/wiring.py)."""
        from routing.wiring import profile_unavailable

        return profile_unavailable(self)


class RoutingExample(models.Model):
    """One labeled outcome: how well a model (or any model of a tier) answered a prompt.

    The learned predictor reads these rows; `import_routing_examples` and feedback write them.
    """

    prompt = models.TextField()
    prompt_hash = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of prompt.")
    embedding = models.BinaryField(help_text="float32 unit vector of the prompt (little endian).")
    layer_embeddings = models.BinaryField(
        blank=True, default=b"",
        help_text="float32 (little endian) mean-pooled, normalized states of the embedder's "
                  "intermediate layers `layers`, one vector after another, from the pass that "
                  "made `embedding` (empty: none).")
    layers = models.CharField(
        max_length=64, blank=True, default="",
        help_text="Comma-separated intermediate layers stored in `layer_embeddings`.")
    model_name = models.CharField(
        max_length=100, blank=True, db_index=True,
        help_text="Profile name the outcome is about (empty: any model of `tier`).")
    tier = models.CharField(max_length=16, choices=Tier.choices, blank=True)
    score = models.FloatField(
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="1 = answered well, 0 = failed; fractions for graded feedback.")
    source = models.CharField(max_length=100, blank=True,
                              help_text="Where the label came from (dataset, feedback).")
    request_id = models.CharField(max_length=64, blank=True,
                                  help_text="Ledger request id, for feedback examples.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(model_name="") | ~models.Q(tier=""),
                name="routing_example_names_model_or_tier"),
            models.UniqueConstraint(fields=["prompt_hash", "model_name", "tier", "source"],
                                    name="routing_example_unique_label"),
        ]

    def __str__(self) -> str:
        return f"{self.model_name or self.tier}: {self.score:.2f}"


class RouterAlias(models.Model):
    """A named router (`model: "<name>"`) for a team, or for everyone when `team` is empty.

    It routes like `auto`, restricted to `candidates` (empty: every profile) and with its own
    quality floor and latency limit.
    """

    name = models.CharField(max_length=100)
    team = models.ForeignKey("llmops.Team", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="router_aliases")
    candidates = models.JSONField(default=list, blank=True,
                                  help_text="Profile names this router may choose (empty: all).")
    min_quality = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Required predicted quality (empty: the caller's tier decides).")
    max_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "router aliases"
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="router_alias_unique_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.team or 'all teams'})"
