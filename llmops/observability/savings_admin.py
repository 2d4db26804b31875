"""The admin's savings page (staff only): spend, savings by source, shadow estimates, verified-hit
precision, routing's strong-model share and sampled quality, per team and per period, as numbers
and charts."""

from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from budgets.rollups import day_start
from llmops.models import Team
from llmops.observability.savings import savings_summary, verified_hits
from llmops.observability.savings_overview import period_days, savings_per_period, savings_per_team
from llmops.observability.selectors import quality_per_model
from llmops.observability.views import WINDOWS, savings_chart, window_days


def _team(request: HttpRequest) -> Team | None:
    try:
        return Team.objects.filter(pk=int(request.GET["team"])).first()
    except (KeyError, ValueError):
        return None


def savings_chart_data(summary, periods) -> dict:
    """Return the JSON the page's charts draw: savings by source (the dashboard's chart) and
    spend, realized savings and shadow estimates per period, with the strong-model share."""
    return {
        "savings": savings_chart(summary),
        "savings_per_period": [{
            "period": p.start.date().isoformat(), "spend": float(p.summary.spend),
            "saved_exact": float(p.summary.saved_exact),
            "saved_semantic": float(p.summary.saved_semantic),
            "saved_routing": float(p.summary.saved_routing),
            "shadow_saved": float(p.summary.shadow_saved_total),
            "strong_share": p.summary.strong_share} for p in periods],
    }


def savings_admin_view(request: HttpRequest, *, admin_site) -> TemplateResponse:
    """Render the savings of the last `?days=` UTC days, of `?team=` or every team."""
    days = window_days(request)
    team = _team(request)
    team_id = team.pk if team else None
    now = timezone.now()
    since = day_start(now) - timedelta(days=days - 1)
    until = day_start(now) + timedelta(days=1)
    summary = savings_summary(since=since, until=until, team_id=team_id)
    step = period_days(days)
    periods = savings_per_period(since=since, until=until, step_days=step, team_id=team_id)
    context = {
        **admin_site.each_context(request),
        "title": f"Savings{f' of {team.name}' if team else ''}",
        "days": days, "windows": WINDOWS, "team": team,
        "teams": Team.objects.order_by("name").values("id", "name"),
        "summary": summary,
        "periods": periods[::-1], "period_days": step,
        "per_team": [] if team else savings_per_team(since=since, until=until,
                                                       limit=settings.DASHBOARD_TOP_N),
        "verified": verified_hits(team_id=team_id, limit=settings.DASHBOARD_TOP_N),
        "quality": quality_per_model(since=since, team_id=team_id),
        "chart_data": savings_chart_data(summary, periods),
        "generated_at": now,
    }
    return TemplateResponse(request, "admin/savings.html", context)
