"""Celery broker down: budget alerts and the cache's write-behind cannot be queued, yet requests
are answered and charged as usual; the alert row stays behind, undelivered, for redelivery."""

from decimal import Decimal

import pytest

from budgets.models import BudgetAlert, UsageRecord
from tests.toolkit.fixtures import assert_books_straight, unique_prompt
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url
from tests.toolkit.net import free_port


@pytest.mark.django_db(transaction=True)
def test_requests_are_unaffected_when_the_broker_is_down(fault_profiles, api_key, fake_provider):
    from budgets.services import budget_set

    budget_set(scope="team", team=api_key.api_key.team, daily_limit=Decimal("0.01"),
               alert_threshold=Decimal("0.001"), action="alert_only",
               notify_webhook_url="http://127.0.0.1:9/never-reached")
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = {"CELERY_BROKER_URL": dead_broker, "CELERY_TASK_ALWAYS_EAGER": "false",
           "CELERY_BROKER_CONNECTION_TIMEOUT": "0.5",
           "ENABLE_SEMANTIC_CACHE": "true", "SEMCACHE_WRITE_BEHIND": "celery"}
    with GatewayProcess(database_url=gateway_database_url(), env=env) as gateway:
        with gateway.client(api_key.key) as client:
            for stream in (False, True, False):
                response = client.post("/v1/chat/completions", json={
                    "model": "fault-alone", "messages": unique_prompt("broker down"),
                    "max_tokens": 16, "stream": stream})
                assert response.status_code == 200, response.text
                if stream:
                    assert response.text.rstrip().endswith("data: [DONE]")
        log = gateway.output()
    assert UsageRecord.objects.count() == 3
    assert all(r.status == "ok" and r.cost > 0 for r in UsageRecord.objects.all())
    # The threshold alert was created once and waits, undelivered, for the broker.
    alerts = list(BudgetAlert.objects.all())
    assert len(alerts) == 1 and alerts[0].delivered_at is None
    assert len(fake_provider.requests) == 3
    assert "Traceback" not in log or "could not enqueue" in log
    assert_books_straight()
