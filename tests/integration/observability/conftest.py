"""Fixtures for observability tests: routes, ledger rows made directly, a staff client."""

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone


@pytest.fixture
def make_usage():
    """Return a factory writing one ledger row for an IssuedKey: make_usage(key, cost=...),
    with its roll-ups, as settlement writes both."""
    from budgets.models import UsageRecord
    from budgets.rollups import rollups_add

    def make(issued, **fields) -> UsageRecord:
        api_key = issued.api_key
        values = dict(request_id=uuid.uuid4().hex, api_key=api_key, user=api_key.user,
                      team=api_key.team,
                      requested_model="m-standard", served_model="m-standard",
                      prompt_tokens=100, completion_tokens=50, cost=Decimal("0.001"),
                      latency_ms=300, created_at=timezone.now())
        values.update(fields)
        record = UsageRecord.objects.create(**values)
        rollups_add(record)
        return record

    return make


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(user)
    return client
