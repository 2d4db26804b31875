"""Per-team cache policy: threshold, TTL and opt-in cross-tenant sharing (entries live in Redis)."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class TeamCachePolicy(models.Model):
    """How the semantic cache treats one team. A team without a row gets the global settings."""

    team = models.OneToOneField(
        "llmops.Team", on_delete=models.CASCADE, related_name="cache_policy"
    )
    enabled = models.BooleanField(
        default=True, help_text="Look up and store answers for this team."
    )
    similarity_threshold = models.FloatField(
        null=True, blank=True,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="Minimum adjusted similarity for a semantic hit; "
        "empty: CACHE_SIMILARITY_THRESHOLD.",
    )
    ttl_hours = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.01), MaxValueValidator(24 * 365)],
        help_text="How long answers stay cached; empty: CACHE_TTL_HOURS.",
    )
    share_across_teams = models.BooleanField(
        default=False,
        help_text="Share answers with every other team that also opted in (one shared pool). "
        "Off: this team only ever sees its own answers.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "team cache policy"
        verbose_name_plural = "team cache policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(similarity_threshold__isnull=True)
                | models.Q(similarity_threshold__gte=0.5, similarity_threshold__lte=1.0),
                name="semcache_policy_threshold_range",
            ),
            models.CheckConstraint(
                condition=models.Q(ttl_hours__isnull=True) | models.Q(ttl_hours__gt=0),
                name="semcache_policy_ttl_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"cache policy of {self.team}"


class ThresholdChange(models.Model):
    """A namespace's similarity threshold moved by verified hits: the audit log of those moves
    (written by semcache.verification.threshold_change_create, shown in admin and cache_stats)."""

    namespace = models.CharField(max_length=64, db_index=True)
    team = models.ForeignKey("llmops.Team", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="cache_threshold_changes")
    old_threshold = models.FloatField()
    new_threshold = models.FloatField()
    agree = models.PositiveIntegerField(help_text="Agreeing verified hits the move was based on.")
    disagree = models.PositiveIntegerField(help_text="Disagreeing verified hits the move was "
                                           "based on.")
    precision_low = models.FloatField(help_text="95% Wilson interval of their precision.")
    precision_high = models.FloatField()
    target = models.FloatField(help_text="SEMCACHE_PRECISION_TARGET at the time.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.namespace[:12]}: {self.old_threshold:.3f} → {self.new_threshold:.3f}"
