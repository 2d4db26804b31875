"""Tenants and API keys: who is calling, on whose behalf, and at which tier."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Team(models.Model):
    """A tenant: the unit of isolation for cache entries, budgets and reports."""

    name = models.CharField(max_length=100, unique=True)
    default_max_tokens = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Output-token limit for this team's requests that set no max_tokens: sent "
                  "upstream and reserved against budgets. Empty: LLMOPS_DEFAULT_MAX_TOKENS, "
                  "else the model's own max output.",
    )
    reference_model = models.CharField(
        max_length=100, blank=True,
        help_text="The model this team would call without llmops, for requests sent as `auto` "
                  "or an alias: routing's savings are measured against it. Empty: "
                  "LLMOPS_REFERENCE_MODEL. A request naming a model is its own reference.",
    )
    shadow_mode = models.BooleanField(
        null=True, blank=True,
        help_text="Cache and routing decide but do not act: requests are served as sent, and "
                  "the ledger records what they would have saved. Unknown: LLMOPS_SHADOW_MODE.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKeyTier(models.TextChoices):
    FREE = "free", "Free"
    STANDARD = "standard", "Standard"
    PREMIUM = "premium", "Premium"


class ApiKeyQuerySet(models.QuerySet):
    def usable(self) -> "ApiKeyQuerySet":
        """Return keys that are active, not expired and of an active user, right now."""
        now = timezone.now()
        return self.filter(is_active=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """An application's credential. Only a hash of the secret is stored, never the secret itself.

    A key reads `llmops-<prefix>.<secret>`; the prefix is public (shown in admin and logs) and
    indexes the row, the secret is checked against `hashed_secret` in constant time.
    """

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="api_keys")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="llmops_api_keys"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_secret = models.CharField(max_length=128, editable=False)
    tier = models.CharField(max_length=16, choices=ApiKeyTier.choices, default=ApiKeyTier.STANDARD)
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.masked} ({self.team})"

    @property
    def masked(self) -> str:
        """Return the key as it may be displayed: its public prefix only."""
        return f"llmops-{self.prefix}.…"

    def is_usable(self, now=None) -> bool:
        """Return whether the key may authenticate: active, not expired, and its user active (a
        deactivated Django user's keys stop with it). Reads `user`: select it with the key."""
        now = now or timezone.now()
        return (self.is_active and (self.expires_at is None or self.expires_at > now)
                and self.user.is_active)


# --- Quality signals (observability: llmops/observability/feedback.py) ------------------------


class FeedbackSource(models.TextChoices):
    USER = "user", "User feedback"
    JUDGE = "judge", "LLM judge"


class ResponseFeedback(models.Model):
    """A quality verdict on one answer, linked to its (append-only) ledger row.

    At most one per source and request: a client rates an answer once, the judge scores it once.
    `model` and `task_type` are copied here so quality can be aggregated without a join, and so
    a verdict outlives its ledger row: archiving raw rows (`archive_ledger`) keeps the verdicts
    and clears their link, as it keeps the roll-ups.
    """

    # No database constraint: on PostgreSQL the ledger is partitioned by month and its primary
    # key is (id, created_at), which a key on `id` alone cannot reference. Django still clears
    # the link when a row is deleted (SET_NULL); dropping an archived month clears it in SQL
    # (budgets.partitions).
    usage_record = models.ForeignKey("budgets.UsageRecord", null=True, on_delete=models.SET_NULL,
                                     db_constraint=False, related_name="feedback",
                                     help_text="Empty once the ledger row was archived.")
    source = models.CharField(max_length=8, choices=FeedbackSource.choices)
    score = models.FloatField(help_text="0 (useless or wrong) to 10 (perfect).")
    correct = models.BooleanField(null=True, blank=True,
                                  help_text="Whether the answer was right (unknown: empty).")
    hallucination = models.BooleanField(default=False,
                                        help_text="The judge found unsupported claims.")
    model = models.CharField(max_length=100, blank=True)
    task_type = models.CharField(max_length=32, default="general")
    comment = models.TextField(blank=True, max_length=2000)
    details = models.JSONField(default=dict, blank=True,
                               help_text="Judge output (claims, rationale) or client metadata.")
    prompt = models.JSONField(null=True, blank=True,
                              help_text="The judged messages, kept to export routing examples.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["usage_record", "source"],
                                    name="feedback_one_per_source"),
            models.CheckConstraint(condition=models.Q(score__gte=0) & models.Q(score__lte=10),
                                   name="feedback_score_0_10"),
        ]
        indexes = [models.Index(fields=["model", "task_type"])]

    def __str__(self) -> str:
        return f"{self.source} {self.score:g}/10 on {self.usage_record_id or 'an archived row'}"


class RateLimitRefusal(models.Model):
    """How many requests of one API key the per-key rate limit refused on one UTC day.

    Counted in each process and written in batches (llmops/observability/refusals.py), so a
    flood of refused requests never costs a database write each.
    """

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE,
                                related_name="rate_limit_refusals")
    day = models.DateField(db_index=True)
    refused = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "-refused"]
        constraints = [
            models.UniqueConstraint(fields=["api_key", "day"], name="rate_limit_refusal_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.day}: {self.refused} refused"
