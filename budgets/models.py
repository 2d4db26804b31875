"""The usage ledger: one append-only row per admitted request, the source of truth for spend."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class CacheStatus(models.TextChoices):
    MISS = "miss", "Miss"
    HIT_EXACT = "hit_exact", "Hit (exact)"
    HIT_SEMANTIC = "hit_semantic", "Hit (semantic)"
    BYPASS = "bypass", "Bypassed"
    DISABLED = "disabled", "Disabled"
    ERROR = "error", "Unavailable (bypassed)"


class UsageStatus(models.TextChoices):
    OK = "ok", "OK"
    UPSTREAM_ERROR = "upstream_error", "Upstream error"
    CLIENT_DISCONNECTED = "client_disconnected", "Client disconnected"
    TIMEOUT = "timeout", "Timeout"
    GATEWAY_ERROR = "gateway_error", "Gateway error"


class UsageRecordQuerySet(models.QuerySet):
    def for_team(self, team) -> "UsageRecordQuerySet":
        return self.filter(team=team)


class UsageRecord(models.Model):
    """What one admitted request cost, saved and did. Created once, never updated."""

    request_id = models.CharField(max_length=64, unique=True, default=uuid.uuid4)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    api_key = models.ForeignKey("llmops.ApiKey", null=True, on_delete=models.SET_NULL,
                                related_name="usage_records")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                             related_name="llmops_usage_records")
    team = models.ForeignKey("llmops.Team", null=True, on_delete=models.SET_NULL,
                             related_name="usage_records")

    requested_model = models.CharField(max_length=100)
    served_model = models.CharField(max_length=100, blank=True)
    attempted_models = models.JSONField(default=list, blank=True,
                                        help_text="Every model tried, in order (fallbacks).")
    routing_reason = models.CharField(max_length=64, blank=True)

    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    estimated_prompt_tokens = models.PositiveIntegerField(default=0)

    estimated_cost = models.DecimalField(max_digits=20, decimal_places=12, default=0,
                                         help_text="Upper bound reserved at admission (USD).")
    cost = models.DecimalField(max_digits=20, decimal_places=12, default=0,
                               help_text="Actual cost charged (USD).")
    cost_saved = models.DecimalField(max_digits=20, decimal_places=12, default=0,
                                     help_text="What a cache hit would have cost upstream (USD).")

    cache_status = models.CharField(max_length=16, choices=CacheStatus.choices,
                                    default=CacheStatus.MISS)
    cache_similarity = models.FloatField(null=True, blank=True)

    stream = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True,
                                          help_text="Time to first token (streams).")
    upstream_latency_ms = models.PositiveIntegerField(null=True, blank=True)

    status = models.CharField(max_length=24, choices=UsageStatus.choices, default=UsageStatus.OK)
    error_kind = models.CharField(max_length=32, blank=True)
    http_status = models.PositiveSmallIntegerField(default=200)

    objects = UsageRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "created_at"]),
            models.Index(fields=["api_key", "created_at"]),
            models.Index(fields=["served_model", "created_at"]),
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["cache_status", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.served_model or self.requested_model} ${self.cost}"
