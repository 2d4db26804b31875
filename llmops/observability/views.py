"""The built-in dashboard page (staff only): spend, savings, cache, budgets, refusals, top lists."""

from datetime import timedelta

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from budgets.rollups import day_start
from llmops.observability.refusals import rate_refusals_flush
from llmops.observability.selectors import dashboard_data

WINDOWS = (1, 7, 30, 90)


def window_days(request: HttpRequest) -> int:
    """Return the window the page asks for (`?days=`, 1-366; default DASHBOARD_DEFAULT_DAYS)."""
    try:
        days = int(request.GET.get("days", settings.DASHBOARD_DEFAULT_DAYS))
    except ValueError:
        days = settings.DASHBOARD_DEFAULT_DAYS
    return min(max(days, 1), 366)


def _chart_data(data: dict) -> dict:
    """Return the JSON the charts draw (floats and ISO dates: what JavaScript understands)."""
    return {
        "per_day": [{"day": row["day"].isoformat(), "cost": float(row["cost"]),
                     "saved": float(row["saved"]), "requests": row["requests"]}
                    for row in data["per_day"]],
        "per_model": [{"model": row["model"], "cost": float(row["cost"]),
                       "requests": row["requests"]} for row in data["per_model"]],
        "cache": {"hits": data["totals"]["hits"], "misses": data["totals"]["misses"]},
        "savings": savings_chart(data["savings"]),
        "budgets": [{"label": f"{row.target} ({row.period})", "ratio": row.ratio}
                    for row in data["budgets"]],
        "top_teams": [{"team": row["team_name"], "cost": float(row["cost"])}
                      for row in data["top_teams"]],
    }


def savings_chart(summary) -> dict:
    """Return realized savings and shadow estimates by source (exact, semantic, routing)."""
    return {"realized": [float(summary.saved_exact), float(summary.saved_semantic),
                         float(summary.saved_routing)],
            "shadow": [float(summary.shadow_saved_exact), float(summary.shadow_saved_semantic),
                       float(summary.shadow_saved_routing)]}


@staff_member_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Render the dashboard for the last `?days=` UTC days (default DASHBOARD_DEFAULT_DAYS)."""
    days = window_days(request)
    now = timezone.now()
    rate_refusals_flush()  # this process's pending counts: the embedded server's are all here
    # The last `days` UTC days, today included: whole days, which the roll-ups hold as one row
    # per day (budgets.rollups), so the page costs the same however big the ledger grows.
    data = dashboard_data(since=day_start(now) - timedelta(days=days - 1))
    return render(request, "dashboard/index.html", {
        "title": "Usage dashboard",
        "days": days,
        "windows": WINDOWS,
        "generated_at": now,
        "data": data,
        "chart_data": _chart_data(data),
    })
