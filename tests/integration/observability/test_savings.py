"""`manage.py savings_report`: its figures are the ledger's sums, by source, team and window."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from budgets.models import UsageRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(make_api_key, make_usage, simulated_profiles):
    acme = make_api_key(team="acme", user="alice")
    globex = make_api_key(team="globex", user="bob")
    d = Decimal
    rows = [
        # auto routed to the efficient model, the premium reference would have cost more
        dict(issued=acme, cost=d("0.002"), served_model="simulated-efficient",
             requested_model="auto", routing_reason="cheapest_capable",
             reference_model="simulated-standard", routing_saved=d("0.003"),
             cost_saved=d("0.003")),
        # auto escalated to premium: dearer than the reference
        dict(issued=acme, cost=d("0.009"), served_model="simulated-premium",
             requested_model="auto", routing_reason="escalated",
             reference_model="simulated-standard", routing_saved=d("-0.004"),
             cost_saved=d("-0.004")),
        dict(issued=acme, cost=d(0), cache_status="hit_exact", cache_saved=d("0.0011"),
             cost_saved=d("0.0011"), routing_reason="cache:exact"),
        dict(issued=globex, cost=d(0), cache_status="hit_semantic", cache_similarity=0.95,
             cache_saved=d("0.0007"), cost_saved=d("0.0007"), routing_reason="cache:semantic"),
        dict(issued=globex, cost=d("0.005"), served_model="simulated-premium",
             routing_reason="explicit", reference_model="simulated-premium"),
        # shadow mode: a would-hit, and a would-route to the efficient model
        dict(issued=globex, cost=d("0.006"), served_model="simulated-premium", shadow=True,
             shadow_cache_status="hit_semantic", shadow_cache_entry="e1",
             shadow_cache_similarity=0.91, shadow_cache_saved=d("0.006"),
             shadow_model="simulated-efficient", routing_reason="explicit"),
        dict(issued=globex, cost=d("0.004"), served_model="simulated-premium", shadow=True,
             shadow_model="simulated-premium", shadow_routing_saved=d("0"),
             routing_reason="explicit"),
        dict(issued=globex, cost=d("0.004"), served_model="simulated-standard", shadow=True,
             shadow_model="simulated-efficient", shadow_routing_saved=d("0.0031"),
             routing_reason="explicit"),
        # outside a 7-day window
        dict(issued=acme, cost=d("3"), cache_status="hit_exact", cache_saved=d("1"),
             cost_saved=d("1"), created_at=timezone.now() - timedelta(days=9)),
    ]
    for row in rows:
        make_usage(row.pop("issued"), **row)
    return acme, globex


def report(*args) -> dict:
    out = StringIO()
    call_command("savings_report", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def ledger_sums(rows) -> dict:
    """The same figures, summed in Python over the ledger rows themselves."""
    rows = list(rows)
    total = lambda name, keep=lambda r: True: sum(  # noqa: E731
        (getattr(r, name) for r in rows if keep(r)), Decimal(0))
    return {
        "requests": len(rows),
        "spend": total("cost"),
        "saved_exact": total("cache_saved", lambda r: r.cache_status == "hit_exact"),
        "saved_semantic": total("cache_saved", lambda r: r.cache_status == "hit_semantic"),
        "saved_routing": total("routing_saved"),
        "saved_total": total("cost_saved"),
        "shadow_saved_exact": total("shadow_cache_saved",
                                    lambda r: r.shadow_cache_status == "hit_exact"),
        "shadow_saved_semantic": total("shadow_cache_saved",
                                       lambda r: r.shadow_cache_status == "hit_semantic"),
        "shadow_saved_routing": total("shadow_routing_saved", lambda r: r.shadow),
        "shadow_requests": sum(r.shadow for r in rows),
    }


def test_the_report_sums_equal_the_ledger(ledger):
    since = timezone.now() - timedelta(days=7)
    data = report("--since", "7d")
    expected = ledger_sums(UsageRecord.objects.filter(created_at__gte=since))
    for name, value in expected.items():
        got = Decimal(data[name]) if isinstance(value, Decimal) else data[name]
        assert got == value, name
    assert Decimal(data["saved_total"]) == (Decimal(data["saved_exact"])
                                            + Decimal(data["saved_semantic"])
                                            + Decimal(data["saved_routing"]))
    assert Decimal(data["routing_extra_cost"]) == Decimal("0.004")
    assert Decimal(data["without_llmops"]) == expected["spend"] + expected["saved_total"]
    assert (data["exact_hits"], data["semantic_hits"]) == (1, 1)
    # Routed: the two auto rows; one went to the premium (strong) tier.
    assert (data["routed"], data["routed_strong"], data["strong_share"]) == (2, 1, 0.5)
    assert (data["shadow_semantic_hits"], data["shadow_routed"]) == (1, 3)
    assert data["shadow_routed_strong"] == 1
    assert Decimal(data["shadow_saved_total"]) == Decimal("0.006") + Decimal("0.0031")


def test_one_team_and_a_wider_window(ledger):
    acme, _ = ledger
    data = report("--team", "acme", "--since", "30d")
    expected = ledger_sums(UsageRecord.objects.filter(team=acme.api_key.team))
    assert data["team"] == "acme" and data["requests"] == 4
    for name, value in expected.items():
        got = Decimal(data[name]) if isinstance(value, Decimal) else data[name]
        assert got == value, name


def test_the_text_report_names_each_source(ledger):
    out = StringIO()
    call_command("savings_report", stdout=out)
    text = out.getvalue()
    for label in ("spend", "exact cache hits", "semantic cache hits", "routing (net)",
                  "strong-model share", "shadow mode (3 requests served as sent)"):
        assert label in text, label
    assert "50.0% (1 of 2)" in text


def test_bad_options_are_clear_errors(ledger):
    with pytest.raises(CommandError, match="No team"):
        call_command("savings_report", "--team", "nobody")
    with pytest.raises(CommandError, match="Not a duration"):
        call_command("savings_report", "--since", "last week")
