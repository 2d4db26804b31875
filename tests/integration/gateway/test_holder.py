"""A served request starts its process's heartbeat as the holder of its reservations."""

import time
import uuid

import httpx

from budgets.models import ReservationHolder, UsageRecord
from llmops.gateway import holder


def test_a_served_request_starts_the_heartbeat(live_gateway, api_key, simulated_profiles,
                                              settings):
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {api_key.key}"},
                          json={"model": "simulated-efficient", "max_tokens": 8, "messages": [
                              {"role": "user", "content": f"hello {uuid.uuid4().hex}"}]})
    assert response.status_code == 200
    row = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert row.status == "ok"
    # The loop may already run from an earlier test, whose database was flushed since: then its
    # next beat writes the row again.
    deadline = time.monotonic() + settings.BUDGET_HEARTBEAT_SECONDS + 5
    while not ReservationHolder.objects.filter(pk=holder.holder_id()).exists():
        assert time.monotonic() < deadline, "no heartbeat from the serving process"
        time.sleep(0.1)
