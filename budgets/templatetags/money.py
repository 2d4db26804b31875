"""Template filter `usd`: `{% load money %}{{ amount|usd }}` or `{{ amount|usd:6 }}` (see
budgets.money.format_usd); empty for a missing amount."""

from django import template

from budgets.money import format_usd

register = template.Library()


@register.filter
def usd(amount, decimals: int = 2) -> str:
    """Return `amount` as dollars with at least `decimals` decimals ("" when there is none)."""
    if amount is None or amount == "":
        return ""
    return format_usd(amount, decimals=int(decimals))
