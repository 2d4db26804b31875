"""Budgets, their period counters and reservations, alerts, and the append-only usage ledger."""

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from budgets.money import format_usd

# Money columns: 1e-12 USD precision (routing.pricing.USD), up to 10^8 USD.
MONEY = {"max_digits": 20, "decimal_places": 12}


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


class Endpoint(models.TextChoices):
    """The API a request came through (the ledger keeps it; roll-ups group by it)."""

    CHAT_COMPLETIONS = "chat.completions", "POST /v1/chat/completions"
    RESPONSES = "responses", "POST /v1/responses"
    MESSAGES = "messages", "POST /v1/messages"
    EMBEDDINGS = "embeddings", "POST /v1/embeddings"


class BudgetScope(models.TextChoices):
    KEY = "key", "API key"
    USER = "user", "User"
    TEAM = "team", "Team"
    GLOBAL = "global", "Global"


class BudgetAction(models.TextChoices):
    BLOCK = "block", "Block requests at the limit"
    ALERT_ONLY = "alert_only", "Alert only"


class BudgetPeriod(models.TextChoices):
    DAY = "day", "Daily"
    MONTH = "month", "Monthly"
    TOTAL = "total", "Lifetime total"


class BudgetQuerySet(models.QuerySet):
    def active(self) -> "BudgetQuerySet":
        return self.filter(is_active=True)

    def for_principal(self, principal) -> "BudgetQuerySet":
        """Return the budgets whose scope covers `principal` (key, its user, its team, global)."""
        return self.filter(
            models.Q(scope=BudgetScope.KEY, api_key_id=principal.api_key_id)
            | models.Q(scope=BudgetScope.USER, user_id=principal.user_id)
            | models.Q(scope=BudgetScope.TEAM, team_id=principal.team_id)
            | models.Q(scope=BudgetScope.GLOBAL)
        )


class Budget(models.Model):
    """Spending limits (USD) for one scope, per day, per month and in total; any may be unset.

    A key-scoped budget with `uses_defaults` takes its daily and monthly limits from the
    DEFAULT_DAILY_BUDGET / DEFAULT_MONTHLY_BUDGET settings; admission creates one on demand for a
    key that has no budget of its own, so the defaults get counters like any other budget.
    """

    scope = models.CharField(max_length=8, choices=BudgetScope.choices)
    api_key = models.ForeignKey("llmops.ApiKey", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="budgets")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.CASCADE, related_name="llmops_budgets")
    team = models.ForeignKey("llmops.Team", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="budgets")

    daily_limit = models.DecimalField(**MONEY, null=True, blank=True,
                                      validators=[MinValueValidator(Decimal(0))],
                                      help_text="USD per UTC day (empty: no daily limit).")
    monthly_limit = models.DecimalField(**MONEY, null=True, blank=True,
                                        validators=[MinValueValidator(Decimal(0))],
                                        help_text="USD per UTC calendar month (empty: none).")
    total_limit = models.DecimalField(**MONEY, null=True, blank=True,
                                      validators=[MinValueValidator(Decimal(0))],
                                      help_text="USD over the budget's lifetime (empty: none).")
    uses_defaults = models.BooleanField(
        default=False, editable=False,
        help_text="Created for a key without its own budget: limits come from the settings.")

    alert_threshold = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.8"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
        help_text="Alert once per period when spend reaches this fraction of a limit.")
    action = models.CharField(max_length=16, choices=BudgetAction.choices,
                              default=BudgetAction.BLOCK)
    notify_webhook_url = models.URLField(blank=True, help_text="POSTed a JSON body per alert.")
    notify_email = models.EmailField(blank=True, help_text="Emailed per alert.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BudgetQuerySet.as_manager()

    class Meta:
        ordering = ["scope", "id"]
        constraints = [
            models.CheckConstraint(
                name="budget_scope_target",
                condition=(
                    models.Q(scope=BudgetScope.KEY, api_key__isnull=False, user__isnull=True,
                             team__isnull=True)
                    | models.Q(scope=BudgetScope.USER, api_key__isnull=True, user__isnull=False,
                               team__isnull=True)
                    | models.Q(scope=BudgetScope.TEAM, api_key__isnull=True, user__isnull=True,
                               team__isnull=False)
                    | models.Q(scope=BudgetScope.GLOBAL, api_key__isnull=True,
                               user__isnull=True, team__isnull=True)
                ),
            ),
            # One budget per target keeps admission at one counter per (scope, period).
            models.UniqueConstraint(fields=["api_key"], condition=models.Q(scope="key"),
                                    name="budget_one_per_key"),
            models.UniqueConstraint(fields=["user"], condition=models.Q(scope="user"),
                                    name="budget_one_per_user"),
            models.UniqueConstraint(fields=["team"], condition=models.Q(scope="team"),
                                    name="budget_one_per_team"),
            models.UniqueConstraint(fields=["scope"], condition=models.Q(scope="global"),
                                    name="budget_one_global"),
        ]

    def __str__(self) -> str:
        return f"{self.get_scope_display()} budget: {self.target_label}"

    @property
    def target_label(self) -> str:
        if self.scope == BudgetScope.KEY and self.api_key_id:
            return f"key {self.api_key.prefix}"
        if self.scope == BudgetScope.USER and self.user_id:
            return f"user {self.user}"
        if self.scope == BudgetScope.TEAM and self.team_id:
            return f"team {self.team}"
        return "global"

    @property
    def blocks(self) -> bool:
        return self.action == BudgetAction.BLOCK

    def limit_for(self, period: str) -> Decimal | None:
        """Return the effective USD limit for `period` (None: unlimited)."""
        if period == BudgetPeriod.TOTAL:
            return self.total_limit
        if self.uses_defaults:
            if period == BudgetPeriod.DAY:
                return getattr(settings, "DEFAULT_DAILY_BUDGET", None)
            return getattr(settings, "DEFAULT_MONTHLY_BUDGET", None)
        return self.daily_limit if period == BudgetPeriod.DAY else self.monthly_limit

    def limits(self) -> dict[str, Decimal]:
        """Return {period: limit} for every period this budget limits."""
        out = {}
        for period in BudgetPeriod.values:
            limit = self.limit_for(period)
            if limit is not None:
                out[period] = limit
        return out

    def clean(self) -> None:
        targets = {BudgetScope.KEY: "api_key", BudgetScope.USER: "user", BudgetScope.TEAM: "team"}
        for scope, field in targets.items():
            has = getattr(self, f"{field}_id") is not None
            if self.scope == scope and not has:
                raise ValidationError({field: f"A {scope}-scoped budget needs a {field}."})
            if self.scope != scope and has:
                raise ValidationError({field: f"Only a {scope}-scoped budget names a {field}."})


class BudgetCounter(models.Model):
    """Spend and outstanding reservations of one budget in one period (a day, a month, ever).

    Rows are keyed by (budget, period, period start) and created on first use, so a new day or
    month starts from zero without any reset job. `spent + reserved` never passes the limit.
    """

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="counters")
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices)
    period_start = models.DateTimeField()
    spent = models.DecimalField(**MONEY, default=Decimal(0))
    reserved = models.DecimalField(**MONEY, default=Decimal(0))
    threshold_alerted_at = models.DateTimeField(null=True, blank=True)
    limit_alerted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # Requests this period's limit refused, and the upper-bound cost they asked to reserve. A
    # refusal is counted once, on the narrowest limit that refused it, by admission itself.
    refused = models.PositiveBigIntegerField(default=0)
    # Wider than MONEY: a flood of refused requests must never overflow the column (which
    # would fail the admission statement itself).
    refused_amount = models.DecimalField(max_digits=30, decimal_places=12, default=Decimal(0))
    last_refused_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_start", "budget_id"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "period", "period_start"],
                                    name="budget_counter_unique_period"),
        ]

    def __str__(self) -> str:
        return f"{self.budget_id}/{self.period}@{self.period_start:%Y-%m-%d}: {self.spent}"


class BudgetReservation(models.Model):
    """Money held on some counters for one admitted request until it settles.

    Settlement deletes it; a request that died without settling leaves it behind for the
    stale-reservation sweep to release.
    """

    request_id = models.CharField(max_length=64)
    amount = models.DecimalField(**MONEY)
    counter_ids = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Who asked, so that the sweep can write the ledger row of a request that died unsettled.
    api_key = models.ForeignKey("llmops.ApiKey", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="+")
    team = models.ForeignKey("llmops.Team", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    requested_model = models.CharField(max_length=100, blank=True)
    # The gateway process holding it (a `ReservationHolder`): while that process heartbeats,
    # the sweep leaves the reservation alone however long its request runs; once it stops, the
    # sweep releases it within seconds. Empty for reservations made outside a gateway process,
    # which only age out (BUDGET_RESERVATION_TIMEOUT_SECONDS).
    holder = models.CharField(max_length=64, blank=True, db_index=True)

    class Meta:
        constraints = [
            # Request ids are the client's (X-Request-ID), so they are unique per team only.
            models.UniqueConstraint(fields=["request_id", "team"],
                                    name="reservation_request_id_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id}: {format_usd(self.amount)}"


class ReservationHolder(models.Model):
    """A gateway process that holds reservations, and when it last said it is alive."""

    id = models.CharField(max_length=64, primary_key=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid} (seen {self.seen_at:%Y-%m-%d %H:%M:%S})"


class BudgetAlertKind(models.TextChoices):
    THRESHOLD = "threshold", "Threshold crossed"
    LIMIT = "limit", "Limit reached"


class BudgetAlert(models.Model):
    """One alert for one budget period; at most one per kind and counter."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    counter = models.ForeignKey(BudgetCounter, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=BudgetAlertKind.choices)
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices)
    period_start = models.DateTimeField()
    spent = models.DecimalField(**MONEY)
    limit = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["counter", "kind"], name="budget_alert_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: budget {self.budget_id} {self.period}"


class UsageRecordQuerySet(models.QuerySet):
    def for_team(self, team) -> "UsageRecordQuerySet":
        return self.filter(team=team)


class UsageRecord(models.Model):
    """What one admitted request cost, saved and did. Created once, never updated.

    `created_at` is the admission time, so a request is charged to the periods it was admitted
    in (the same counters it reserved on), even when it settles after midnight. On PostgreSQL the
    table is partitioned by UTC month of `created_at` (budgets.partitions, docs/ledger.md).
    """

    # The client's X-Request-ID (else one the gateway made): unique within the team, so one
    # team's ids never collide with, nor reveal, another's.
    request_id = models.CharField(max_length=64, default=uuid.uuid4)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    api_key = models.ForeignKey("llmops.ApiKey", null=True, on_delete=models.SET_NULL,
                                related_name="usage_records")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                             related_name="llmops_usage_records")
    team = models.ForeignKey("llmops.Team", null=True, on_delete=models.SET_NULL,
                             related_name="usage_records")

    endpoint = models.CharField(max_length=24, choices=Endpoint.choices,
                                default=Endpoint.CHAT_COMPLETIONS)
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

    estimated_cost = models.DecimalField(**MONEY, default=0,
                                         help_text="Upper bound reserved at admission (USD).")
    cost = models.DecimalField(**MONEY, default=0, help_text="Actual cost charged (USD).")
    # Savings (docs/savings.md): what llmops avoided, by source. `cost_saved` is their total,
    # cache_saved + routing_saved; exact and semantic hits are told apart by `cache_status`.
    cost_saved = models.DecimalField(
        **MONEY, default=0,
        help_text="Total cost avoided: cache_saved + routing_saved (USD; negative when routing "
                  "chose a dearer model).")
    cache_saved = models.DecimalField(
        **MONEY, default=0,
        help_text="A cache hit: what the call that stored the answer cost (USD).")
    reference_model = models.CharField(
        max_length=100, blank=True,
        help_text="The usable model the request would have gone to without llmops ('' when "
                  "there is none: no routing saving claimed).")
    routing_saved = models.DecimalField(
        **MONEY, default=0,
        help_text="Reference model's cost at this request's token counts minus its cost (USD; "
                  "negative when the model served was dearer).")

    # Shadow mode: what the cache and routing would have done; the request was served as sent.
    shadow = models.BooleanField(default=False, help_text="Served in shadow mode.")
    shadow_cache_status = models.CharField(
        max_length=16, blank=True, help_text="hit_exact / hit_semantic: the cache would have "
                                             "answered ('' when it would not).")
    shadow_cache_entry = models.CharField(max_length=64, blank=True)
    shadow_cache_similarity = models.FloatField(null=True, blank=True)
    shadow_model = models.CharField(max_length=100, blank=True,
                                    help_text="The model routing would have chosen.")
    shadow_cache_saved = models.DecimalField(
        **MONEY, default=0, help_text="A would-hit: this request's cost, all avoided (USD).")
    shadow_routing_saved = models.DecimalField(
        **MONEY, default=0,
        help_text="Not a would-hit: this request's cost minus the would-route model's at the "
                  "same token counts (USD; may be negative).")

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
            models.Index(fields=["user", "created_at"]),
            models.Index(fields=["served_model", "created_at"]),
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["cache_status", "created_at"]),
            # The admin's endpoint filter, bounded in time like every ledger view.
            models.Index(fields=["endpoint", "created_at"]),
        ]
        constraints = [
            # Unique per team (team, request_id); request_id first so that the admin's search
            # by id alone still uses the index. On PostgreSQL, where the table is partitioned
            # by month (budgets.partitions), a trigger enforces it with the same error and a
            # plain (request_id, team_id) index serves the lookups.
            models.UniqueConstraint(fields=["request_id", "team"],
                                    name="usage_request_id_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.served_model or self.requested_model} " \
               f"{format_usd(self.cost)}"


class RollupGrain(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"
    # Coarse day grains: a few dimensions kept, the others collapsed (budgets.rollups).
    DAY_BY_KEY = "dkey", "Day, per key"
    DAY_BY_MODEL = "dmod", "Day, per model"


class UsageRollup(models.Model):
    """Sums of the ledger over one hour or one UTC day for one combination of who, what and how
    (team, key, user, endpoint, requested and served model, routing reason, cache status,
    status, shadow mode's would-hit and would-route): what reports read instead of scanning the
    ledger. The coarse day grains keep only some of these (per key: team, key, user; per model:
    served model, routing reason, cache status, status, shadow) and hold the others empty.

    Hour and day rows are kept current by settlement (added to in the same statement or
    transaction as the ledger row, budgets.rollups); coarse rows are folded from the day rows
    once the day is over (`RollupFold`). All are rebuildable from the ledger
    (`rebuild_rollups`). A day row is the sum of its hour rows, a coarse row the sum of its day
    rows. Archiving raw ledger rows leaves roll-ups alone.

    Team, key and user are ids without a database constraint: a deleted team's history stays
    summed under its old id (the ledger's own column turns NULL then).
    """

    # Digest of (grain, start, dimensions): one unique column makes the upsert one
    # `ON CONFLICT (bucket)` on SQLite and PostgreSQL alike, NULL dimensions included.
    bucket = models.CharField(max_length=32, unique=True)
    grain = models.CharField(max_length=4, choices=RollupGrain.choices)
    start = models.DateTimeField(help_text="Start of the hour or UTC day.")

    team = models.ForeignKey("llmops.Team", null=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    api_key = models.ForeignKey("llmops.ApiKey", null=True, on_delete=models.DO_NOTHING,
                                db_constraint=False, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    endpoint = models.CharField(max_length=24, choices=Endpoint.choices)
    requested_model = models.CharField(max_length=100)
    served_model = models.CharField(max_length=100, blank=True)
    routing_reason = models.CharField(max_length=64, blank=True)
    cache_status = models.CharField(max_length=16, choices=CacheStatus.choices)
    status = models.CharField(max_length=24, choices=UsageStatus.choices)
    shadow_cache_status = models.CharField(max_length=16, blank=True, default="")
    shadow_model = models.CharField(max_length=100, blank=True, default="")

    # Sums (budgets.rollups.MEASURES says how each comes from a ledger row). Money is wider
    # than MONEY: a sum of many rows must not overflow.
    request_count = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    estimated_cost = models.DecimalField(max_digits=30, decimal_places=12, default=Decimal(0))
    cost = models.DecimalField(max_digits=30, decimal_places=12, default=Decimal(0))
    cost_saved = models.DecimalField(max_digits=30, decimal_places=12, default=Decimal(0))
    latency_ms_sum = models.BigIntegerField(default=0)
    latency_count = models.BigIntegerField(default=0)
    ttft_ms_sum = models.BigIntegerField(default=0)
    ttft_count = models.BigIntegerField(default=0)
    cache_saved = models.DecimalField(max_digits=30, decimal_places=12, default=Decimal(0))
    routing_saved = models.DecimalField(max_digits=30, decimal_places=12, default=Decimal(0))
    routing_extra_cost = models.DecimalField(
        max_digits=30, decimal_places=12, default=Decimal(0),
        help_text="The negative part of routing_saved: rows served dearer than the reference.")
    shadow_requests = models.BigIntegerField(default=0)
    shadow_cache_saved = models.DecimalField(max_digits=30, decimal_places=12,
                                             default=Decimal(0))
    shadow_routing_saved = models.DecimalField(max_digits=30, decimal_places=12,
                                               default=Decimal(0))
    hits = models.BigIntegerField(default=0, help_text="Requests answered from the cache.")
    hit_cost_saved = models.DecimalField(max_digits=30, decimal_places=12, default=Decimal(0),
                                         help_text="cost_saved of the cache hits.")
    errors = models.BigIntegerField(default=0, help_text="Requests whose status is not ok.")

    class Meta:
        indexes = [
            models.Index(fields=["grain", "start"]),
            models.Index(fields=["team", "grain", "start"]),
        ]

    def __str__(self) -> str:
        return (f"{self.grain} {self.start:%Y-%m-%d %H:%M} team {self.team_id}: "
                f"{self.request_count} requests")


class RollupFold(models.Model):
    """How far the coarse day grains are folded: every UTC day before `folded_until` has its
    per-key and per-model rows, summed from its day rows once the day was over (one row, pk 1).

    Settlement adds only to the hour and day rows of its own team, key and model; the coarse
    rows are shared by every team on a model, so adding to them inline would make every
    settlement for that model queue on one row. Readers take the folded days from the coarse
    rows and the days after from the day rows (budgets.rollups). No row: nothing is folded.
    """

    folded_until = models.DateTimeField(help_text="Start of the first UTC day not yet folded.")

    def __str__(self) -> str:
        return f"coarse roll-ups folded until {self.folded_until:%Y-%m-%d}"


class LedgerArchive(models.Model):
    """One run of `archive_ledger`: ledger rows before `before` were exported and deleted.

    Reconciliation reads it to tell a period whose raw rows are gone from one that drifted.
    """

    before = models.DateTimeField(db_index=True)
    destination = models.CharField(max_length=1024)
    rows = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-before"]

    def __str__(self) -> str:
        return f"before {self.before:%Y-%m-%d %H:%M}: {self.rows} rows → {self.destination}"
