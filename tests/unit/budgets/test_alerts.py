"""Alerts (budgets/services/alerts.py): threshold and limit, once a period, delivered or retried."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail

from budgets.errors import BudgetExceeded
from budgets.models import BudgetAlert, BudgetReservation, BudgetScope, UsageRecord
from budgets.services import budget_set, request_admit
from tests.unit.budgets.factories import spend

pytestmark = pytest.mark.django_db

D = Decimal


class Webhook:
    """The alerts' webhook receiver in place of `httpx.post`: it keeps every payload posted to
    it, or fails as an unreachable one does while `down`."""

    def __init__(self) -> None:
        self.posted: list[dict] = []
        self.down = False

    def post(self, url: str, json: dict, timeout: float) -> "Webhook":
        if self.down:
            raise OSError("webhook down")
        self.posted.append(json)
        return self

    def raise_for_status(self) -> None:
        return None


@pytest.fixture
def webhook(monkeypatch) -> Webhook:
    receiver = Webhook()
    monkeypatch.setattr("httpx.post", receiver.post)
    return receiver


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Return run(fn, ...): call fn, then run its on_commit callbacks (alert delivery), as a
    real commit would; the test's own transaction never commits."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


class TestAlert:
    def test_threshold_and_limit_alerts_are_sent_once_per_period(
        self, api_key, principal, webhook, committed
    ):
        posted = webhook.posted
        budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("1"),
                   alert_threshold=D("0.5"), notify_email="ops@example.com",
                   notify_webhook_url="https://hooks.example.com/budget")
        committed(spend, principal, "a", "0.4", "0.4")
        assert posted == [] and mail.outbox == []
        committed(spend, principal, "b", "0.2", "0.2")  # 0.6 ≥ 0.5 → threshold
        committed(spend, principal, "c", "0.1", "0.1")  # still over threshold: no second alert
        assert [p["event"] for p in posted] == ["budget.threshold"]
        assert posted[0]["spent"] == "0.600000000000" and posted[0]["limit"] == "1.000000000000"
        assert len(mail.outbox) == 1 and "ops@example.com" in mail.outbox[0].to
        committed(spend, principal, "d", "0.3", "0.3")  # exactly at the limit
        for i in range(3):
            with pytest.raises(BudgetExceeded):
                committed(request_admit, principal=principal, request_id=f"x{i}",
                          estimated_cost=D("0.1"))
        assert [p["event"] for p in posted] == ["budget.threshold", "budget.limit"]
        assert BudgetAlert.objects.filter(delivered_at__isnull=False).count() == 2

    def test_an_alert_on_a_tiny_limit_names_its_amounts(self, api_key, principal):
        from budgets.services import alert_payload

        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("0.0000005"))
        spend(principal, "a", "0.0000005", "0.0000004")
        alert = BudgetAlert.objects.get(kind="threshold")
        assert alert_payload(alert=alert)["message"].endswith(": $0.0000004 of $0.0000005.")
        assert str(UsageRecord.objects.get(request_id="a")).endswith(" m $0.0000004")
        reservation = request_admit(principal=principal, request_id="b", estimated_cost=D(0))
        assert str(BudgetReservation.objects.get(request_id=reservation.request_id)) == "b: $0.00"

    def test_refusal_sends_the_limit_alert_once(self, api_key, principal, committed):
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                   notify_email="ops@example.com")
        for i in range(3):
            with pytest.raises(BudgetExceeded):
                committed(request_admit, principal=principal, request_id=f"x{i}",
                          estimated_cost=D("2"))
        assert BudgetAlert.objects.filter(kind="limit").count() == 1
        assert len(mail.outbox) == 1

    def test_failed_delivery_is_recorded_not_raised(
        self, api_key, principal, webhook, committed
    ):
        webhook.down = True
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                   notify_webhook_url="https://hooks.example.com/x")
        committed(spend, principal, "a", "1", "0.9")  # the settle itself succeeds
        alert = BudgetAlert.objects.get()
        assert alert.delivered_at is None and "webhook down" in alert.last_error
        assert alert.attempts >= 1

    def test_undelivered_alerts_are_sent_again_once_the_webhook_is_back(
        self, api_key, principal, webhook, committed
    ):
        from budgets.services import alerts_redeliver

        webhook.down = True
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                   notify_webhook_url="https://hooks.example.com/x")
        committed(spend, principal, "a", "1", "0.9")
        alert = BudgetAlert.objects.get()
        assert alert.delivered_at is None
        later = alert.created_at + timedelta(minutes=5)
        assert alerts_redeliver(now=alert.created_at) == 0  # too fresh: its own retry is due

        webhook.down = False
        posted = webhook.posted
        assert alerts_redeliver(now=later) == 1
        alert.refresh_from_db()
        assert alert.delivered_at is not None and len(posted) == 1
        assert alerts_redeliver(now=later) == 0  # delivered alerts are left alone
