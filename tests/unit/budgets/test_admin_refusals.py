"""Refusals in the admin: the budget list, a budget's counters, rate-limit refusals per key."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from budgets.errors import BudgetExceeded
from budgets.models import BudgetScope
from budgets.services import budget_set, request_admit
from llmops.models import RateLimitRefusal

pytestmark = pytest.mark.django_db


@pytest.fixture
def refused_budget(api_key, principal):
    budget = budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team,
                        daily_limit=Decimal("1"), monthly_limit=Decimal("10"))
    for i in range(2):
        with pytest.raises(BudgetExceeded):
            request_admit(principal=principal, request_id=f"big{i}", estimated_cost=Decimal("2"))
    return budget


def test_the_budget_list_shows_each_current_periods_refusals(
    admin_client, refused_budget, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):  # from the counters it already prefetches
        page = admin_client.get(reverse("admin:budgets_budget_changelist")).content.decode()
    assert "Refused (current periods)" in page and 'field-refused_now">daily 2<' in page


def test_a_budgets_page_shows_refusals_per_counter(admin_client, refused_budget):
    page = admin_client.get(reverse("admin:budgets_budget_change",
                                    args=[refused_budget.pk])).content.decode()
    assert "Refused amount" in page and "Last refused at" in page
    assert re.search(r'field-refused">\s*<p>2</p>', page)
    assert re.search(r'field-refused_amount">\s*<p>4.000000000000</p>', page)


def test_rate_limit_refusals_per_key_and_day_are_listed_read_only(admin_client, api_key):
    RateLimitRefusal.objects.create(api_key=api_key.api_key, day=timezone.now().date(),
                                    refused=41)
    url = reverse("admin:llmops_ratelimitrefusal_changelist")
    page = admin_client.get(url).content.decode()
    assert api_key.api_key.masked in page and "<td class=\"field-refused\">41</td>" in page
    assert api_key.key not in page
    assert admin_client.get(reverse("admin:llmops_ratelimitrefusal_add")).status_code == 403
