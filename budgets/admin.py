"""Admin for budgets (live utilization bars), alerts, open reservations and the read-only ledger.

For the Team and ApiKey pages (llmops/admin.py) this module also offers `TeamBudgetInline`,
`ApiKeyBudgetInline` and `budget_admin_link`, so a budget can be created from the key or team.
"""

import csv
from datetime import timedelta

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import PAGE_VAR
from django.db import models
from django.db.models import Prefetch
from django.forms.models import BaseInlineFormSet
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from budgets.admin_ledger import (
    LedgerChangeList,
    RollupRelatedFilter,
    RollupValuesFilter,
    UncountedPaginator,
    default_window_days,
)
from budgets.models import (
    Budget,
    BudgetAlert,
    BudgetCounter,
    BudgetPeriod,
    BudgetReservation,
    BudgetScope,
    UsageRecord,
)
from budgets.money import format_usd
from budgets.periods import period_start
from budgets.rollups import day_start
from budgets.selectors import team_spend_summary
from budgets.services import budget_counters_seed


def _utilization_bar(spent, reserved, limit) -> str:
    """Return an HTML bar: spent (solid) and reserved (light) as a share of the limit."""
    if limit is None:
        return "—"
    if not limit:
        ratio_spent = 1.0 if spent else 0.0
        ratio_reserved = 0.0
    else:
        ratio_spent = min(float(spent / limit), 1.0)
        ratio_reserved = min(float(reserved / limit), 1.0 - ratio_spent)
    color = "#ba2121" if ratio_spent >= 0.95 else "#e0a800" if ratio_spent >= 0.8 else "#417690"
    return format_html(
        '<div title="{} spent + {} reserved of {}" style="width:120px;height:10px;'
        'background:#eee;display:inline-block;vertical-align:middle;">'
        '<div style="width:{}%;height:100%;background:{};float:left;"></div>'
        '<div style="width:{}%;height:100%;background:{};opacity:.35;float:left;"></div></div>'
        ' <span style="font-size:11px">{}% of {}</span>',
        format_usd(spent, decimals=4), format_usd(reserved, decimals=4), format_usd(limit),
        f"{ratio_spent * 100:.1f}", color, f"{ratio_reserved * 100:.1f}", color,
        f"{ratio_spent * 100:.0f}", format_usd(limit),
    )


class BudgetCounterInline(admin.TabularInline):
    model = BudgetCounter
    extra = 0
    can_delete = False
    ordering = ["-period_start", "period"]
    fields = ["period", "period_start", "spent", "reserved", "threshold_alerted_at",
              "limit_alerted_at", "refused", "refused_amount", "last_refused_at", "updated_at"]
    readonly_fields = fields
    max_num = 0
    verbose_name_plural = "Period counters (spent, reserved, and requests the limit refused)"

    def get_queryset(self, request):
        # The last few periods are what matters; old rows stay in the database for reconcile.
        since = timezone.now() - timedelta(days=62)
        return super().get_queryset(request).filter(period_start__gte=since) | (
            super().get_queryset(request).filter(period=BudgetPeriod.TOTAL))


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["__str__", "scope", "day_utilization", "month_utilization",
                    "total_utilization", "refused_now", "alert_threshold", "action", "is_active"]
    list_filter = ["scope", "action", "is_active", "uses_defaults"]
    search_fields = ["team__name", "api_key__prefix", "user__username"]
    autocomplete_fields = []
    raw_id_fields = ["api_key", "user", "team"]
    readonly_fields = ["uses_defaults", "created_at", "updated_at"]
    inlines = [BudgetCounterInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = [
        ("Scope", {"fields": ["scope", "api_key", "user", "team"],
                   "description": "Pick a scope and the one key, user or team it names "
                                  "(none for global)."}),
        ("Limits (USD; empty means no limit)", {"fields": ["daily_limit", "monthly_limit",
                                                           "total_limit", "uses_defaults"]}),
        ("At the limit", {"fields": ["action", "alert_threshold", "notify_webhook_url",
                                     "notify_email", "is_active"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request):
        now = timezone.now()
        starts = {period_start(p, now) for p in BudgetPeriod.values}
        current = BudgetCounter.objects.filter(period_start__in=starts)
        return (super().get_queryset(request).select_related("api_key", "user", "team")
                .prefetch_related(Prefetch("counters", queryset=current,
                                           to_attr="current_counters")))

    def _bar(self, budget: Budget, period: str) -> str:
        start = period_start(period, timezone.now())
        counter = next((c for c in getattr(budget, "current_counters", [])
                        if c.period == period and c.period_start == start), None)
        spent = counter.spent if counter else 0
        reserved = counter.reserved if counter else 0
        return _utilization_bar(spent, reserved, budget.limit_for(period))

    @admin.display(description="today")
    def day_utilization(self, obj):
        return self._bar(obj, BudgetPeriod.DAY)

    @admin.display(description="this month")
    def month_utilization(self, obj):
        return self._bar(obj, BudgetPeriod.MONTH)

    @admin.display(description="lifetime")
    def total_utilization(self, obj):
        return self._bar(obj, BudgetPeriod.TOTAL)

    @admin.display(description="refused (current periods)")
    def refused_now(self, obj):
        """Requests each current period's limit refused, from the prefetched counters."""
        now = timezone.now()
        counts = [f"{BudgetPeriod(c.period).label.lower()} {c.refused}"
                  for c in sorted(getattr(obj, "current_counters", []),
                                  key=lambda c: BudgetPeriod.values.index(c.period))
                  if c.refused and c.period_start == period_start(c.period, now)]
        return ", ".join(counts) or "—"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        budget_counters_seed(budget=obj)  # a new limit starts from the ledger's spend


@admin.register(BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "budget", "kind", "period", "period_start", "spent", "limit",
                    "delivered_at", "attempts", "last_error"]
    list_filter = ["kind", "period", "budget__scope", ("delivered_at", admin.EmptyFieldListFilter)]
    list_select_related = ["budget__team", "budget__api_key", "budget__user"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(BudgetReservation)
class BudgetReservationAdmin(admin.ModelAdmin):
    """Open reservations: requests admitted and not yet settled (old ones await the sweep)."""

    list_display = ["request_id", "amount", "created_at", "counter_ids"]
    search_fields = ["=request_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# Every column of the ledger but its surrogate key, so a column added to the model is exported
# without anyone remembering this list.
CSV_FIELDS = [f.attname for f in UsageRecord._meta.concrete_fields if not f.primary_key]


class _Echo:
    def write(self, value):
        return value


def ledger_csv_response(queryset, filename: str = "usage.csv") -> StreamingHttpResponse:
    """Stream `queryset` (ledger rows) as CSV without holding it in memory."""
    writer = csv.writer(_Echo())
    rows = queryset.order_by("created_at").values_list(*CSV_FIELDS).iterator(chunk_size=2000)

    def lines():
        yield writer.writerow(CSV_FIELDS)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """The ledger, read-only: filters, search by request id, CSV export, per-team summary."""

    change_list_template = "admin/budgets/usagerecord/change_list.html"
    list_display = ["created_at", "request_id", "team", "key_prefix", "requested_model",
                    "served_model", "status", "cache_status", "cost", "cost_saved",
                    "prompt_tokens", "completion_tokens", "latency_ms"]
    # Choices come from the roll-ups and static lists: no DISTINCT over the ledger (admin_ledger).
    list_filter = [
        ("team", RollupRelatedFilter),
        ("api_key", RollupRelatedFilter),
        ("served_model", RollupValuesFilter),
        "endpoint",
        "status",
        "cache_status",
        "shadow",
        "stream",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["=request_id"]
    list_select_related = ["team", "api_key"]
    date_hierarchy = "created_at"  # its years, months and days come from the day roll-ups
    # Never COUNT(*) the ledger: pages are read one row long (UncountedPaginator), there is no
    # "show all", and facet counts are off.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    list_max_show_all = 0
    actions = ["export_csv"]

    def get_changelist(self, request, **kwargs):
        return LedgerChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0,
                      allow_empty_first_page=True):
        try:
            page_number = int(request.GET.get(PAGE_VAR, 1))
        except ValueError:
            page_number = 1
        return UncountedPaginator(queryset, per_page, orphans=orphans,
                                  allow_empty_first_page=allow_empty_first_page,
                                  page_number=page_number)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "default_days": default_window_days()}
        return super().changelist_view(request, extra_context)

    @admin.display(description="key", ordering="api_key__prefix")
    def key_prefix(self, obj):
        return obj.api_key.prefix if obj.api_key_id else "—"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # append-only

    @admin.action(description="Export selected rows as CSV")
    def export_csv(self, request, queryset):
        return ledger_csv_response(queryset)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("export.csv", self.admin_site.admin_view(self.export_view),
                 name=f"{prefix}_export"),
            path("team-summary/", self.admin_site.admin_view(self.team_summary_view),
                 name=f"{prefix}_team_summary"),
            *super().get_urls(),
        ]

    def export_view(self, request):
        """Export every row matching the changelist's current filters and search."""
        changelist = self.get_changelist_instance(request)
        return ledger_csv_response(changelist.get_queryset(request))

    def team_summary_view(self, request):
        try:
            days = max(1, min(int(request.GET.get("days", 30)), 3660))
        except ValueError:
            days = 30
        # Whole UTC days, today included: one roll-up row per day and bucket.
        since = day_start(timezone.now()) - timedelta(days=days - 1)
        rows = team_spend_summary(since=since)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Spend per team, last {days} days",
            "opts": self.opts,
            "rows": rows,
            "days": days,
            "day_choices": [1, 7, 30, 90, 365],
            "total_spent": sum((r["spent"] or 0) for r in rows),
            "total_saved": sum((r["saved"] or 0) for r in rows),
        }
        return TemplateResponse(request, "admin/budgets/team_summary.html", context)


# --- For llmops/admin.py: create a budget from a team's or key's page ----------------------------


class _ScopedBudgetFormSet(BaseInlineFormSet):
    """Give each inline budget its scope from the parent, and seed counters on save."""

    scope = ""

    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        form.instance.scope = self.scope
        return form

    @property
    def empty_form(self):
        form = super().empty_form
        form.instance.scope = self.scope
        return form

    def save(self, commit=True):
        saved = super().save(commit=commit)
        if commit:
            for budget in saved:
                budget_counters_seed(budget=budget)
        return saved


class _TeamBudgetFormSet(_ScopedBudgetFormSet):
    scope = BudgetScope.TEAM


class _KeyBudgetFormSet(_ScopedBudgetFormSet):
    scope = BudgetScope.KEY


class _BudgetInlineBase(admin.StackedInline):
    model = Budget
    extra = 0
    max_num = 1
    can_delete = True
    fields = ["daily_limit", "monthly_limit", "total_limit", "alert_threshold", "action",
              "notify_webhook_url", "notify_email", "is_active"]
    form = forms.ModelForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    verbose_name = "budget"
    verbose_name_plural = "budget"


class TeamBudgetInline(_BudgetInlineBase):
    """Add to TeamAdmin.inlines: edit or create the team's budget on the team page."""

    fk_name = "team"
    formset = _TeamBudgetFormSet


class ApiKeyBudgetInline(_BudgetInlineBase):
    """Add to ApiKeyAdmin.inlines: edit or create the key's budget on the key page."""

    fk_name = "api_key"
    formset = _KeyBudgetFormSet


def budget_admin_link(obj) -> str:
    """Return an HTML link to `obj`'s budget (a Team, ApiKey or user), or to create one."""
    from llmops.models import ApiKey, Team

    if isinstance(obj, Team):
        scope, field = BudgetScope.TEAM, "team"
    elif isinstance(obj, ApiKey):
        scope, field = BudgetScope.KEY, "api_key"
    else:
        scope, field = BudgetScope.USER, "user"
    budget = Budget.objects.filter(scope=scope, **{field: obj}).first()
    if budget is not None:
        return format_html('<a href="{}">{}</a>',
                           reverse("admin:budgets_budget_change", args=[budget.pk]),
                           "edit budget")
    query = urlencode({"scope": scope, field: obj.pk})
    return format_html('<a href="{}?{}">{}</a>', reverse("admin:budgets_budget_add"), query,
                       "create budget")
