"""The sweep (budgets/services/sweep.py): holders heartbeat; the reservations of dead ones are
released and charged."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from budgets.models import BudgetReservation, BudgetScope, UsageRecord
from budgets.services import budget_set, request_admit, request_settle, reservations_release_stale
from tests.unit.budgets.factories import counter, entry, principal_of, spend

pytestmark = pytest.mark.django_db

D = Decimal


class TestSweep:
    def test_stale_reservation_is_released_and_a_late_settle_only_charges(
        self, api_key, principal
    ):
        b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"))
        t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        dead = request_admit(principal=principal, request_id="dead", estimated_cost=D("0.7"),
                             now=t0)
        request_admit(principal=principal, request_id="fresh", estimated_cost=D("0.2"),
                      now=t0 + timedelta(minutes=15))
        released = reservations_release_stale(older_than_seconds=600,
                                              now=t0 + timedelta(minutes=20))
        assert released == 1
        assert list(BudgetReservation.objects.values_list("request_id", flat=True)) == ["fresh"]
        # budget_set seeded today's counter too; t0's day is the one these requests charge.
        day = counter(b, start=datetime(2026, 11, 25, tzinfo=UTC))
        # The dead request is charged its reservation, the most it could have cost.
        assert (day.spent, day.reserved) == (D("0.7"), D("0.2"))
        abandoned = UsageRecord.objects.get(request_id="dead")
        assert (abandoned.error_kind, abandoned.cost) == ("abandoned", D("0.7"))
        # The request presumed dead settles after all: its real cost replaces that charge, and
        # it is not released a second time.
        request_settle(admission=dead, entry=entry(principal, "dead", "0.1"))
        day.refresh_from_db()
        assert (day.spent, day.reserved) == (D("0.1"), D("0.2"))
        # Its one ledger row is now the real one, replacing the sweep's provisional row.
        row = UsageRecord.objects.get(request_id="dead")
        assert row.error_kind == "" and row.cost == D("0.1")

    def test_a_live_holder_keeps_its_reservations_however_old(self, api_key, principal):
        from budgets.services import reservation_holder_heartbeat

        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("5"))
        t0 = timezone.now() - timedelta(hours=3)
        for name in ("alive", "dead"):
            reservation_holder_heartbeat(holder_id=name, now=t0)
            request_admit(principal=principal, request_id=f"{name}-req", estimated_cost=D("1"),
                          holder=name, now=t0)
        now = t0 + timedelta(hours=3)
        reservation_holder_heartbeat(holder_id="alive", now=now - timedelta(seconds=5))
        # A long stream of a live process: not swept, whatever its age.
        released = reservations_release_stale(holder_timeout_seconds=30, now=now)
        assert released == 1
        assert list(BudgetReservation.objects.values_list("request_id", flat=True)) == [
            "alive-req"]
        dead = UsageRecord.objects.get(request_id="dead-req")
        assert (dead.error_kind, dead.cost) == ("abandoned", D("1"))

    def test_a_dead_holder_is_given_the_holder_timeout_before_its_money_moves(
            self, api_key, principal):
        from budgets.services import reservation_holder_heartbeat

        now = timezone.now()
        reservation_holder_heartbeat(holder_id="h", now=now - timedelta(seconds=20))
        request_admit(principal=principal, request_id="r", estimated_cost=D("1"), holder="h",
                      now=now - timedelta(seconds=20))
        assert reservations_release_stale(holder_timeout_seconds=30, now=now) == 0
        assert reservations_release_stale(
            holder_timeout_seconds=30, now=now + timedelta(seconds=11)) == 1

    def test_a_holder_that_never_heartbeat_counts_as_dead(self, api_key, principal):
        now = timezone.now()
        request_admit(principal=principal, request_id="r", estimated_cost=D("1"),
                      holder="never-seen", now=now - timedelta(seconds=31))
        assert reservations_release_stale(holder_timeout_seconds=30, now=now) == 1

    def test_heartbeat_upserts_one_row_per_holder(self):
        from budgets.models import ReservationHolder
        from budgets.services import reservation_holder_heartbeat

        t0 = timezone.now()
        reservation_holder_heartbeat(holder_id="h", hostname="box", pid=7, now=t0)
        reservation_holder_heartbeat(holder_id="h", hostname="box", pid=7,
                                     now=t0 + timedelta(seconds=10))
        row = ReservationHolder.objects.get()
        assert (row.pk, row.pid, row.started_at, row.seen_at) == (
            "h", 7, t0, t0 + timedelta(seconds=10))

    def test_the_sweep_writes_the_row_of_the_team_that_reserved(self, make_api_key,
                                                                  principal):
        other = principal_of(make_api_key(team="team-b", user="bob").api_key)
        t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        spend(principal, "gone", "0.2", "0.1")
        dead = request_admit(principal=other, request_id="gone", estimated_cost=D("0.3"), now=t0)
        assert reservations_release_stale(older_than_seconds=600,
                                          now=t0 + timedelta(minutes=20)) == 1
        abandoned = UsageRecord.objects.get(request_id="gone", team_id=other.team_id)
        assert abandoned.error_kind == "abandoned"
        assert UsageRecord.objects.get(request_id="gone", team_id=principal.team_id).cost == \
            D("0.1")
        # The late settle replaces its own team's provisional row, never the other team's row.
        request_settle(admission=dead, entry=entry(other, "gone", "0.2"))
        rows = dict(UsageRecord.objects.filter(request_id="gone")
                    .values_list("team_id", "error_kind"))
        assert rows == {principal.team_id: "", other.team_id: ""}

    def test_the_sweep_is_a_beat_task(self, settings, principal):
        from budgets import tasks

        schedule = settings.CELERY_BEAT_SCHEDULE["budgets-release-stale-reservations"]
        assert schedule["task"] == tasks.reservations_release_stale.name
        request_admit(principal=principal, request_id="r", estimated_cost=D("1"),
                      now=datetime(2020, 1, 1, tzinfo=UTC))
        assert tasks.reservations_release_stale.delay().get() == 1
