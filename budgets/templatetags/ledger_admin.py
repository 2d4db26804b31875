"""Template tags of the ledger changelist: the date hierarchy drawn from the day roll-ups."""

from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy

from budgets.admin_ledger import RollupDateHierarchy

register = template.Library()


@register.inclusion_tag("admin/date_hierarchy.html")
def ledger_date_hierarchy(cl) -> dict:
    """Render Django's date hierarchy for `cl` with its dates read from the roll-ups."""
    return date_hierarchy(RollupDateHierarchy(cl)) or {}
