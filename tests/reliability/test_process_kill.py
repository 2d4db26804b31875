"""A gateway process SIGKILLed mid-request: its reservation is released by the sweep and charged
(the most the call could have cost), nothing is charged twice, and the other gateway process
keeps serving throughout."""

import threading
import uuid
from decimal import Decimal

import httpx
import pytest

from budgets.models import BudgetCounter, BudgetReservation, UsageRecord
from tests.toolkit.fakeprovider import Behavior
from tests.toolkit.fixtures import assert_books_straight, unique_prompt
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url

pytestmark = pytest.mark.usefixtures("no_semantic_cache")


def _body(**extra) -> dict:
    return {"model": "fault-alone", "messages": unique_prompt("kill"), "max_tokens": 64, **extra}


def _kill_mid_request(api_key, fake_provider, *, stream: bool) -> str:
    """Start a gateway process, send it a request the model answers slowly, SIGKILL the process
    while the request holds its reservation; return the request id."""
    auth = {"Authorization": f"Bearer {api_key.key}"}
    doomed_id = uuid.uuid4().hex
    # The doomed request: the model takes long to answer (or stalls mid-stream).
    slow = (Behavior(stall_after=2, stall_seconds=30, words=20) if stream
            else Behavior(delay_ms=30_000))
    fake_provider.enqueue(slow)
    with GatewayProcess(database_url=gateway_database_url()) as doomed:
        outcome: dict = {}

        def call() -> None:
            try:
                with httpx.stream("POST", f"{doomed.url}/v1/chat/completions",
                                  json=_body(stream=stream), timeout=60,
                                  headers={**auth, "X-Request-ID": doomed_id}) as response:
                    outcome["status"] = response.status_code
                    for _ in response.iter_bytes():
                        pass
            except httpx.HTTPError as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=call)
        worker.start()
        fake_provider.wait_for_requests(1, timeout=30)
        held = BudgetReservation.objects.get(request_id=doomed_id)
        assert held.amount > 0
        assert sum(c.reserved for c in BudgetCounter.objects.all()) > 0
        doomed.kill()
        worker.join(timeout=30)
        assert "error" in outcome, "the client saw the connection die"
    return doomed_id


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_sigkill_mid_request_releases_the_reservation(live_gateway, fault_profiles, team_budget,
                                                      api_key, fake_provider, stream):
    auth = {"Authorization": f"Bearer {api_key.key}"}
    doomed_id = _kill_mid_request(api_key, fake_provider, stream=stream)

    # The other gateway process is unaffected: it serves while the dead one's money is held.
    response = httpx.post(f"{live_gateway.url}/v1/chat/completions", json=_body(), headers=auth,
                          timeout=30)
    assert response.status_code == 200, response.text
    assert BudgetReservation.objects.filter(request_id=doomed_id).exists()

    # While the dead process still counts as alive (its last heartbeat is recent), the sweep
    # leaves its reservation alone; once its heartbeats stop for the holder timeout (here 0 s),
    # the sweep (every gateway process's heartbeat loop, and Celery beat) releases it.
    from django.test import override_settings

    from budgets.tasks import reservations_release_stale

    held = BudgetReservation.objects.get(request_id=doomed_id)
    assert held.holder
    assert reservations_release_stale.delay().get(timeout=30) == 0
    with override_settings(BUDGET_HOLDER_TIMEOUT_SECONDS=0):
        released = reservations_release_stale.delay().get(timeout=30)
    assert released == 1
    assert not BudgetReservation.objects.exists()
    # The dead request keeps its one ledger row (written by the sweep), charged its
    # reservation: whether the provider billed the call died with the process, and the ledger
    # never under-states a bill. Nothing is charged twice.
    abandoned = UsageRecord.objects.get(request_id=doomed_id)
    assert abandoned.error_kind == "abandoned" and abandoned.cost == held.amount
    rows = list(UsageRecord.objects.exclude(request_id=doomed_id))
    assert [r.request_id for r in rows] == [response.headers["x-request-id"]]
    for counter in BudgetCounter.objects.all():
        assert counter.spent == rows[0].cost + held.amount and counter.reserved == Decimal(0)
    assert_books_straight()
    # Running the sweep again finds nothing: releasing is idempotent.
    with override_settings(BUDGET_HOLDER_TIMEOUT_SECONDS=0):
        assert reservations_release_stale.delay().get(timeout=30) == 0


def test_sweep_records_the_abandoned_request_in_the_ledger(transactional_db, fault_profiles,
                                                          team_budget, api_key,
                                                          fake_provider):
    from django.test import override_settings

    from budgets.tasks import reservations_release_stale

    doomed_id = _kill_mid_request(api_key, fake_provider, stream=False)
    with override_settings(BUDGET_HOLDER_TIMEOUT_SECONDS=0):
        assert reservations_release_stale.delay().get(timeout=30) == 1
    assert UsageRecord.objects.filter(request_id=doomed_id).count() == 1
    assert_books_straight()
