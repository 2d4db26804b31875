"""Budgets and spend as the commands print them: the spend table, a budget's settings."""

from decimal import Decimal

from budgets.models import Budget
from budgets.money import format_usd
from budgets.selectors import ScopeSpend, usd_str

SPEND_HEADER = ("SCOPE", "NAME", "REQUESTS", "SPENT", "SAVED", "HITS", "LIMIT", "USED", "REFUSED",
                "REFUSED AMOUNT")


def spend_table(rows: list[ScopeSpend], *, period: str) -> list[str]:
    """Return the lines of `rows` as an aligned table (names left, numbers right), or a line
    saying there is nothing to show this `period`."""
    table = [SPEND_HEADER]
    for r in rows:
        table.append((
            r.scope, r.name, str(r.requests), format_usd(r.spent, decimals=6),
            format_usd(r.saved, decimals=6), str(r.cache_hits),
            "-" if r.limit is None else format_usd(r.limit),
            "-" if r.utilization is None else f"{r.utilization:.1%}",
            str(r.refused), f"{r.refused_amount:.6f}",
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(SPEND_HEADER))]
    lines = []
    for row in table:
        cells = [c.ljust(w) if i < 2 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    if not rows:
        lines.append(f"(no spend and no budgets this {period})")
    return lines


def budget_as_dict(budget: Budget) -> dict:
    """Return a budget's settings for JSON (limits as 12-decimal strings, None when unset)."""
    return {
        "id": budget.pk, "scope": budget.scope, "target": budget.target_label,
        "daily": usd_str(budget.daily_limit), "monthly": usd_str(budget.monthly_limit),
        "total": usd_str(budget.total_limit), "alert_threshold": str(budget.alert_threshold),
        "action": budget.action, "webhook": budget.notify_webhook_url,
        "email": budget.notify_email, "active": budget.is_active,
    }


def budget_line(budget: Budget) -> str:
    """Return a budget's settings in one line: its limits, alert threshold and action."""
    data = budget_as_dict(budget)
    limits = ", ".join(f"{p} {format_usd(Decimal(data[p]))}"
                       for p in ("daily", "monthly", "total") if data[p])
    return (f"{budget}: {limits or 'no limits'}; alert at {budget.alert_threshold:.0%}; "
            f"{budget.get_action_display().lower()}{'' if budget.is_active else ' (disabled)'}")
