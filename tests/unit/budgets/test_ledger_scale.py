"""The ledger at scale: an admin changelist that never counts nor scans the ledger, archiving
(file, rows gone, roll-ups and counters untouched, reconciliation says what it cannot check)
and retention."""

import csv
import gzip
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from budgets.models import BudgetCounter, BudgetScope, LedgerArchive, UsageRecord, UsageRollup
from budgets.rollups import day_start
from budgets.selectors import spend_report
from budgets.services import budget_set, ledger_retention_apply
from budgets.services.archive import ARCHIVE_COLUMNS
from llmops.models import ResponseFeedback
from llmops.observability.selectors import dashboard_data
from tests.unit.budgets.factories import spend

pytestmark = pytest.mark.django_db
D = Decimal
LEDGER = UsageRecord._meta.db_table


@pytest.fixture
def history(api_key, principal):
    """Six requests a day for the last 12 days (two of them today), with a daily team budget."""
    budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("100"),
               monthly_limit=D("1000"))
    now = timezone.now()
    for day in range(12):
        for i in range(2 if day == 0 else 6):
            # Earlier days' rows at noon of their UTC day, so a run just after midnight does not
            # push them into the day before (the admin's window counts whole UTC days).
            at = (now - timedelta(seconds=i) if day == 0
                  else day_start(now) - timedelta(days=day) + timedelta(hours=12, minutes=i))
            spend(principal, f"d{day}-{i}", "1", "0.01", now=at)
    return principal


def _ledger_queries(ctx) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if LEDGER in q["sql"]]


class TestChangelist:
    url = reverse("admin:budgets_usagerecord_changelist")

    def test_pages_are_read_one_row_long_and_never_counted(self, admin_client, history,
                                                           settings, monkeypatch):
        from budgets.admin import UsageRecordAdmin

        settings.LEDGER_ADMIN_DEFAULT_DAYS = 30
        monkeypatch.setattr(UsageRecordAdmin, "list_per_page", 20)
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(self.url, {"p": 2})
        assert response.status_code == 200
        ledger = _ledger_queries(ctx)
        assert not [sql for sql in ledger if "COUNT(" in sql.upper()], ledger
        assert not [sql for sql in ledger if "DISTINCT" in sql.upper()], ledger
        # One read of the page: 20 rows + 1 (is there another page?) from offset 20.
        assert len(ledger) == 1 and re.search(r"LIMIT 21 OFFSET 20", ledger[0]), ledger
        page = response.content.decode()
        assert "‹ newer" in page and "older ›" in page
        assert page.count('name="_selected_action"') == 20
        last = admin_client.get(self.url, {"p": 4}).content.decode()  # rows 61-68
        assert "older ›" not in last and last.count('name="_selected_action"') == 8

    def test_the_default_view_is_the_last_days_unless_a_date_or_search_asks(
            self, admin_client, history, settings):
        settings.LEDGER_ADMIN_DEFAULT_DAYS = 7
        page = admin_client.get(self.url).content.decode()
        shown = set(re.findall(r">(d\d+-\d)<", page))
        assert shown == {f"d{d}-{i}" for d in range(7) for i in range(2 if d == 0 else 6)}
        assert 'id="ledger-window"' in page
        old = (timezone.now() - timedelta(days=11)).date()
        page = admin_client.get(self.url, {"created_at__year": old.year,
                                           "created_at__month": old.month,
                                           "created_at__day": old.day}).content.decode()
        assert "d11-0" in page and 'id="ledger-window"' not in page
        assert "d11-3" in admin_client.get(self.url, {"q": "d11-3"}).content.decode()

    def test_filters_and_date_hierarchy_read_the_rollups_not_the_ledger(
            self, admin_client, history, api_key):
        with CaptureQueriesContext(connection) as ctx:
            page = admin_client.get(self.url).content.decode()
        ledger = _ledger_queries(ctx)
        assert len(ledger) == 1, "\n".join(ledger)  # the page; choices and dates: roll-ups
        assert f"?team__id__exact={api_key.api_key.team_id}" in page
        assert "?served_model=m" in page
        assert "created_at__year=" in page or "created_at__month=" in page
        year = timezone.now().year
        with CaptureQueriesContext(connection) as ctx:
            admin_client.get(self.url, {"created_at__year": year})
        assert not [s for s in _ledger_queries(ctx) if "DISTINCT" in s.upper()]


@pytest.fixture
def archive_path(tmp_path):
    return tmp_path / "ledger.csv.gz"


def _reports(now):
    return ([r.as_dict() for r in spend_report(period="month", now=now)],
            dashboard_data(since=now - timedelta(days=30))["totals"])


class TestArchive:
    def test_archive_writes_the_rows_deletes_them_and_leaves_rollups_and_counters(
            self, history, archive_path):
        cut = (timezone.now() - timedelta(days=5)).date()
        before_rows = list(UsageRecord.objects.filter(
            created_at__lt=datetime.combine(cut, datetime.min.time(), tzinfo=UTC))
            .order_by("created_at", "id").values_list("id", "request_id", "cost"))
        rollups = list(UsageRollup.objects.order_by("bucket").values())
        counters = list(BudgetCounter.objects.order_by("pk").values())
        reports = _reports(timezone.now())
        verdicts = [ResponseFeedback.objects.create(
            usage_record_id=pk, source="judge", score=7, model="m") for pk in (
                before_rows[0][0], UsageRecord.objects.order_by("-created_at")[0].pk)]
        out, err = io.StringIO(), io.StringIO()
        call_command("archive_ledger", "--before", cut.isoformat(), "--to", str(archive_path),
                     "--batch-size", "7", stdout=out, stderr=err)
        assert f"Archived {len(before_rows)} ledger rows" in out.getvalue()
        assert "archive_ledger" in err.getvalue()  # the progress bar, on stderr
        with gzip.open(archive_path, "rt", newline="") as f:
            written = list(csv.reader(f))
        assert written[0] == ARCHIVE_COLUMNS
        ids = ARCHIVE_COLUMNS.index("id"), ARCHIVE_COLUMNS.index("request_id")
        cost = ARCHIVE_COLUMNS.index("cost")
        assert [(int(r[ids[0]]), r[ids[1]], D(r[cost])) for r in written[1:]] == before_rows
        assert not UsageRecord.objects.filter(pk__in=[r[0] for r in before_rows]).exists()
        assert UsageRecord.objects.count() == 2 + 6 * 11 - len(before_rows)
        assert list(UsageRollup.objects.order_by("bucket").values()) == rollups
        assert list(BudgetCounter.objects.order_by("pk").values()) == counters
        assert _reports(timezone.now()) == reports
        assert LedgerArchive.objects.get().rows == len(before_rows)
        # Quality verdicts outlive their archived rows, unlinked; the others keep their link.
        assert [(f.usage_record_id, f.score) for f in ResponseFeedback.objects.filter(
            pk__in=[v.pk for v in verdicts]).order_by("pk")] == [
            (None, 7), (verdicts[1].usage_record_id, 7)]

    def test_reconcile_checks_raw_periods_and_says_which_were_archived(
            self, history, archive_path):
        cut = (timezone.now() - timedelta(days=5)).date()
        call_command("archive_ledger", "--before", cut.isoformat(), "--to", str(archive_path),
                     "--json", stdout=io.StringIO())
        cut_at = datetime.combine(cut, datetime.min.time(), tzinfo=UTC)
        BudgetCounter.objects.filter(period="day", period_start__gte=cut_at).update(
            spent=D("42"))  # drift in periods the ledger still holds
        out = io.StringIO()
        call_command("reconcile_budgets", "--json", stdout=out)
        result = json.loads(out.getvalue())
        archived_days = BudgetCounter.objects.filter(period_start__lt=cut_at).count()
        assert result["not_checked"] == archived_days > 0
        assert result["archived_before"].startswith(cut.isoformat())
        fixed = {d["period_start"][:10] for d in result["drifts"]}
        assert fixed and all(day >= cut.isoformat() for day in fixed)
        text = io.StringIO()
        call_command("reconcile_budgets", "--dry-run", stdout=text)
        assert "not checked" in text.getvalue() and "archived" in text.getvalue()
        # The days the ledger still holds are right again.
        assert not BudgetCounter.objects.filter(spent=D("42")).exists()

    def test_retention_archives_whole_days_past_the_setting_or_nothing(
            self, history, settings, tmp_path):
        settings.LEDGER_ARCHIVE_DIR = str(tmp_path / "archive")
        settings.LEDGER_RETENTION_DAYS = None
        assert ledger_retention_apply() == 0
        settings.LEDGER_RETENTION_DAYS = 10
        cut = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
            days=10)
        expected = UsageRecord.objects.filter(created_at__lt=cut).count()
        assert expected and ledger_retention_apply() == expected
        assert not UsageRecord.objects.filter(created_at__lt=cut).exists()
        (path,) = (tmp_path / "archive").iterdir()
        assert path.name.endswith(".csv.gz")
        assert ledger_retention_apply() == 0

    def test_archive_refuses_an_existing_file(self, history, tmp_path):
        from django.core.management.base import CommandError

        path = tmp_path / "exists.csv"
        path.write_text("keep me")
        with pytest.raises(CommandError, match="exists"):
            call_command("archive_ledger", "--before", "2026-01-01", "--to", str(path))
        assert path.read_text() == "keep me"


