"""The ledger partitioned by UTC month on PostgreSQL: partitions after migrate, rows routed to
their month, months created ahead idempotently, request ids unique per team across months (also
under a race), and archiving whole months by dropping their partition. SQLite keeps the plain
table: these tests run on PostgreSQL only."""

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from budgets import partitions
from budgets.models import BudgetCounter, BudgetScope, LedgerArchive, UsageRecord, UsageRollup
from budgets.services import budget_set
from budgets.services.archive import ARCHIVE_COLUMNS
from budgets.tasks import ledger_partitions_ensure
from llmops.models import ResponseFeedback
from tests.unit.budgets.factories import principal_of, spend

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql",
                                reason="partitions are PostgreSQL's; SQLite keeps one table")


def _month(offset: int) -> datetime:
    """Return the start of the UTC month `offset` months after the first one migrate created
    (the month after the legacy partition's last)."""
    start = partitions.month_start(timezone.now())
    for _ in range(offset + 1):
        start = partitions.next_month(start)
    return start


def _where(record: UsageRecord) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {partitions.TABLE} WHERE id = %s",
                       [record.pk])
        return cursor.fetchone()[0]


def _row(team_id, request_id: str, at: datetime) -> UsageRecord:
    return UsageRecord.objects.create(request_id=request_id, team_id=team_id, created_at=at,
                                      requested_model="m", served_model="m")


@pytest.mark.django_db
class TestPartitions:
    def test_migrate_leaves_a_legacy_partition_months_ahead_and_a_default(self):
        found = partitions.partitions()
        assert partitions.is_partitioned()
        assert [p.name for p in found] == [
            partitions.LEGACY, partitions.month_name(_month(0)), partitions.month_name(_month(1)),
            partitions.DEFAULT]
        legacy = found[0]
        assert legacy.lower is None and legacy.upper == _month(0)
        assert found[-1].is_default

    def test_a_row_lands_in_its_month_or_the_default(self, api_key):
        team = api_key.api_key.team_id
        assert _where(_row(team, "now", timezone.now())) == partitions.LEGACY
        assert _where(_row(team, "next", _month(0) + timedelta(days=3))) == \
            partitions.month_name(_month(0))
        assert _where(_row(team, "far", _month(9))) == partitions.DEFAULT

    def test_the_beat_task_creates_months_ahead_idempotently(self, settings):
        settings.LEDGER_PARTITIONS_AHEAD = 2
        assert ledger_partitions_ensure() == []  # migrate created this month and two ahead
        later = _month(3)
        created = partitions.ledger_partitions_ensure(now=later, ahead=2)
        assert created == [partitions.month_name(_month(i)) for i in (3, 4, 5)]
        assert partitions.ledger_partitions_ensure(now=later, ahead=2) == []
        # The gap (month 2) stays with the DEFAULT partition until something creates it.
        assert partitions.month_name(_month(2)) not in {p.name for p in partitions.partitions()}

    def test_a_month_whose_rows_sit_in_default_is_left_there(self, api_key):
        _row(api_key.api_key.team_id, "early", _month(3) + timedelta(days=1))
        assert partitions.ledger_partitions_ensure(now=_month(3), ahead=0) == []
        assert UsageRecord.objects.filter(request_id="early").exists()

    def test_the_command_lists_and_creates(self):
        out = io.StringIO()
        call_command("ledger_partitions", "--ahead", "3", stdout=out)
        assert f"Created {partitions.month_name(_month(2))}." in out.getvalue()
        assert f"{partitions.DEFAULT}: DEFAULT" in out.getvalue()


@pytest.mark.django_db
class TestRequestIdsUniquePerTeam:
    def test_an_id_is_unique_per_team_across_months(self, api_key, make_api_key):
        team = api_key.api_key.team_id
        _row(team, "dup", timezone.now())
        for at in (timezone.now(), _month(0) + timedelta(days=1), _month(9)):
            with pytest.raises(IntegrityError, match="usage_request_id_per_team"), \
                    transaction.atomic():
                _row(team, "dup", at)
        other = make_api_key(team="team-b").api_key.team_id
        _row(other, "dup", _month(0))  # another team's id is no conflict
        _row(None, "dup", timezone.now())  # no team: never a conflict, as with the index
        _row(None, "dup", _month(0))

    def test_an_id_replaced_in_one_transaction_is_free_again(self, api_key):
        team = api_key.api_key.team_id
        with transaction.atomic():
            _row(team, "swap", timezone.now()).delete()
            _row(team, "swap", timezone.now())
        assert UsageRecord.objects.filter(request_id="swap").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_inserts_of_one_id_in_two_months_let_one_through(api_key):
    """The second insert waits for the first's transaction, then sees its row."""
    team = api_key.api_key.team_id
    inserted, release, outcome = threading.Event(), threading.Event(), {}

    def first():
        try:
            with transaction.atomic():
                _row(team, "race", timezone.now())
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    def second():
        try:
            _row(team, "race", _month(0) + timedelta(days=2))
            outcome["second"] = "inserted"
        except IntegrityError:
            outcome["second"] = "refused"
        finally:
            connection.close()

    a = threading.Thread(target=first)
    a.start()
    assert inserted.wait(10)
    b = threading.Thread(target=second)
    b.start()
    b.join(0.5)
    assert b.is_alive()  # waiting on the first's stripe lock
    release.set()
    a.join(10)
    b.join(10)
    assert outcome == {"second": "refused"}
    assert UsageRecord.objects.filter(request_id="race").count() == 1


@pytest.mark.django_db
class TestArchiveDropsMonths:
    @pytest.fixture
    def months(self, api_key):
        """Ledger rows now (legacy partition) and in the next two months, spent through
        admission and settlement (so roll-ups and counters hold them)."""
        principal = principal_of(api_key.api_key)
        budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("100"),
                   monthly_limit=D("1000"))
        rows = [spend(principal, f"now-{i}", "1", "0.01", now=timezone.now() - timedelta(
            minutes=i)) for i in range(3)]
        for month in (0, 1):
            rows += [spend(principal, f"m{month}-{i}", "1", "0.02",
                           now=_month(month) + timedelta(days=i, hours=1)) for i in range(4)]
        return rows

    def test_a_whole_month_is_written_then_its_partition_dropped(self, months, tmp_path):
        verdict = ResponseFeedback.objects.create(usage_record=months[3], source="judge",
                                                  score=6, model="m")
        kept = ResponseFeedback.objects.create(usage_record=months[-1], source="judge",
                                               score=8, model="m")
        rollups = list(UsageRollup.objects.order_by("bucket").values())
        path = tmp_path / "ledger.csv"
        out = io.StringIO()
        call_command("archive_ledger", "--before", _month(1).date().isoformat(), "--to",
                     str(path), "--batch-size", "2", stdout=out, stderr=io.StringIO())
        archived = [r for r in months if r.created_at < _month(1)]
        assert f"Archived {len(archived)} ledger rows" in out.getvalue()
        with path.open(newline="") as f:
            written = list(csv.reader(f))
        assert written[0] == ARCHIVE_COLUMNS
        id_at = ARCHIVE_COLUMNS.index("id")
        assert sorted(int(r[id_at]) for r in written[1:]) == sorted(r.pk for r in archived)
        # Both the legacy partition and the first month were whole before the cut: dropped.
        names = {p.name for p in partitions.partitions()}
        assert partitions.LEGACY not in names
        assert partitions.month_name(_month(0)) not in names
        assert partitions.month_name(_month(1)) in names
        assert list(UsageRecord.objects.values_list("pk", flat=True).order_by("pk")) == \
            [r.pk for r in months if r.created_at >= _month(1)]
        assert list(UsageRollup.objects.order_by("bucket").values()) == rollups
        verdict.refresh_from_db()
        kept.refresh_from_db()
        assert (verdict.usage_record_id, kept.usage_record_id) == (None, months[-1].pk)
        assert LedgerArchive.objects.get().rows == len(archived)

    def test_a_cut_inside_a_month_drops_whole_months_and_deletes_the_rest(self, months,
                                                                         tmp_path):
        cut = _month(0) + timedelta(days=2)
        path = tmp_path / "ledger.csv"
        call_command("archive_ledger", "--before", cut.date().isoformat(), "--to", str(path),
                     stdout=io.StringIO(), stderr=io.StringIO())
        archived = {r.pk for r in months if r.created_at < cut}
        with path.open(newline="") as f:
            written = list(csv.reader(f))[1:]
        assert {int(r[0]) for r in written} == archived and len(written) == len(archived)
        names = {p.name for p in partitions.partitions()}
        assert partitions.LEGACY not in names and partitions.month_name(_month(0)) in names
        assert set(UsageRecord.objects.values_list("pk", flat=True)) == \
            {r.pk for r in months} - archived

    def test_reconcile_still_checks_the_months_held_raw(self, months, tmp_path):
        call_command("archive_ledger", "--before", _month(1).date().isoformat(), "--to",
                     str(tmp_path / "l.csv"), stdout=io.StringIO(), stderr=io.StringIO())
        held = BudgetCounter.objects.filter(period="day", period_start__gte=_month(1))
        assert held.count() == 4
        held.update(spent=D("42"))  # drift in days the ledger still holds
        out = io.StringIO()
        call_command("reconcile_budgets", "--json", stdout=out)
        result = json.loads(out.getvalue())
        assert result["not_checked"] == BudgetCounter.objects.filter(
            period_start__lt=_month(1)).count() > 0
        assert {d["period_start"][:10] for d in result["drifts"] if d["period"] == "day"} == {
            (_month(1) + timedelta(days=i)).date().isoformat() for i in range(4)}
        assert list(held.values_list("spent", flat=True)) == [D("0.02")] * 4


def test_month_boundaries_are_utc():
    moment = datetime(2027, 1, 31, 23, 30, tzinfo=UTC)
    assert partitions.month_start(moment) == datetime(2027, 1, 1, tzinfo=UTC)
    assert partitions.next_month(datetime(2027, 12, 1, tzinfo=UTC)) == datetime(2028, 1, 1,
                                                                                tzinfo=UTC)
