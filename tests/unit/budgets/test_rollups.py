"""Roll-ups (budgets/rollups.py): equal to the ledger's sums after every kind of ledger write,
rebuilt idempotently, caught up after a stretch written without them, and what reports read."""

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from budgets import rollups
from budgets.models import RollupFold, RollupGrain, UsageRecord, UsageRollup
from budgets.rollups import (
    COARSE_GRAINS,
    DIMENSIONS,
    FOLD_DELAY,
    MEASURES,
    bucket_key,
    day_start,
    folded_until,
    hour_start,
    rollups_fold,
)
from budgets.selectors import spend_report, team_spend_summary
from budgets.services import UsageEntry, request_admit, request_settle
from budgets.services.sweep import reservations_release_stale
from tests.toolkit.rollups import assert_rollups_match_ledger, rollup_sums
from tests.unit.budgets.factories import principal_of

D = Decimal
T0 = datetime(2026, 11, 25, 22, 10, tzinfo=UTC)  # two UTC days, several hours


def snapshot() -> set:
    return {(r.bucket, r.grain, r.start, *(getattr(r, m.column) for m in MEASURES))
            for r in UsageRollup.objects.all()}


def fold_until(day: datetime | None) -> None:
    """Say the coarse grains are folded up to `day` (None: nothing folded)."""
    RollupFold.objects.all().delete()
    if day is not None:
        RollupFold.objects.create(pk=1, folded_until=day)


@pytest.fixture(params=["folded", "unfolded"])
def traffic(request, make_api_key):
    """A mix over five hours and two UTC days, two teams: answers (some slow, some streamed),
    cache hits with savings, upstream errors, and a request the sweep presumed dead that settled
    after all (the one ledger row that is ever replaced). Written into days folded already (late
    rows: the coarse grains take them as they are written), or into days not folded yet (their
    coarse rows come with the fold)."""
    if request.param == "unfolded":
        fold_until(day_start(T0))
    a = principal_of(make_api_key(team="team-a", user="alice").api_key)
    b = principal_of(make_api_key(team="team-b", user="bob").api_key)
    n = 0

    def admitted(principal, at, **fields):
        nonlocal n
        n += 1
        rid = f"r{n}"
        admission = request_admit(principal=principal, request_id=rid,
                                  estimated_cost=D("0.01"), now=at)
        return request_settle(admission=admission, entry=UsageEntry(
            request_id=rid, principal=principal, requested_model=fields.pop("model", "m"),
            served_model=fields.pop("served_model", "m"), estimated_cost=D("0.01"), **fields))

    def hit(principal, at, status):
        nonlocal n
        n += 1
        request_settle(admission=None, entry=UsageEntry(
            request_id=f"h{n}", principal=principal, requested_model="m", served_model="m",
            cache_status=status, cost_saved=D("0.000321"), cache_saved=D("0.000321"),
            recorded_at=at))

    for i in range(5):
        at = T0 + timedelta(minutes=37 * i)
        admitted(a, at, cost=D("0.001234567891"), prompt_tokens=100 + i, completion_tokens=7,
                 cached_tokens=3, reasoning_tokens=i, latency_ms=200 + i, ttft_ms=50)
        admitted(b, at, cost=D("0.002"), prompt_tokens=9, model="auto", routing_reason="auto:x",
                 endpoint="responses", stream=True, latency_ms=90)
        hit(a, at, "hit_exact")
        hit(b, at, "hit_semantic")
        admitted(a, at, status="upstream_error", error_kind="http_500", http_status=502)
        # Savings by source: routing cheaper and dearer than the reference, shadow mode's
        # would-hit and would-route, a verified hit's background call.
        routing = D("0.0004") * (2 - i)
        admitted(b, at, cost=D("0.0009"), model="auto", served_model="m-strong",
                 routing_reason="auto:quality", reference_model="m-ref", routing_saved=routing,
                 cost_saved=routing)
        admitted(a, at, cost=D("0.003"), shadow=True,
                 shadow_cache_status="hit_exact" if i % 2 else "hit_semantic",
                 shadow_cache_saved=D("0.003"))
        admitted(b, at, cost=D("0.003"), shadow=True, shadow_model="m-strong" if i else "m-x",
                 shadow_routing_saved=D("0.001") - D("0.0007") * i)
        admitted(a, at, cost=D("0.0002"), routing_reason="cache:verify")
    dead = request_admit(principal=a, request_id="dead", estimated_cost=D("0.7"), now=T0)
    reservations_release_stale(older_than_seconds=600, now=T0 + timedelta(minutes=20))
    assert UsageRecord.objects.filter(error_kind="abandoned").count() == 1
    assert_rollups_match_ledger()  # the sweep's provisional row is rolled up too
    request_settle(admission=dead, entry=UsageEntry(
        request_id="dead", principal=a, requested_model="m", served_model="m", cost=D("0.1")))
    return a, b


@pytest.mark.django_db
class TestRollups:
    def test_rollups_equal_the_ledger_after_every_kind_of_write(self, traffic):
        assert UsageRecord.objects.count() == 46
        assert_rollups_match_ledger()
        assert not UsageRollup.objects.filter(request_count=0).exists()

    def test_a_day_is_the_sum_of_its_hours(self, traffic):
        hours, days = rollup_sums(RollupGrain.HOUR), rollup_sums(RollupGrain.DAY)
        folded: dict = defaultdict(lambda: defaultdict(int))
        for (start, dims), sums in hours.items():
            for column, value in sums.items():
                folded[(day_start(start), dims)][column] += value
        assert {k: dict(v) for k, v in folded.items()} == days

    def test_rebuild_is_idempotent_and_equals_the_incremental_rows(self, traffic):
        before = snapshot()
        call_command("rebuild_rollups", "--since", "2026-11-25", "--until", "2026-11-27",
                     "--json")
        assert snapshot() == before
        call_command("rebuild_rollups", "--json")  # the whole ledger, again
        assert snapshot() == before
        assert_rollups_match_ledger()

    def test_coarse_grains_are_rebuilt_from_the_day_rows_alone(self, traffic):
        """`--coarse-only` reads no raw row: it restores the per-key and per-model rows of days
        whose raw rows are gone (archived) from their day rows."""
        before = snapshot()
        UsageRollup.objects.filter(grain__in=rollups.COARSE_GRAINS).delete()
        UsageRecord.objects.all().delete()  # as if archived (roll-ups stay)
        call_command("rebuild_rollups", "--coarse-only", "--json")
        assert snapshot() == before

    def test_catch_up_after_a_stretch_written_without_rollups(self, traffic, make_api_key,
                                                               monkeypatch):
        """A ledger written while roll-ups were not kept (a restored backup, rows loaded in
        bulk) is caught up by rebuilding the days it touched."""
        c = principal_of(make_api_key(team="team-c", user="carol").api_key)
        monkeypatch.setattr(rollups, "INLINE", False)
        at = T0 + timedelta(days=1, hours=3)
        for i in range(3):
            admission = request_admit(principal=c, request_id=f"c{i}", estimated_cost=D("1"),
                                      now=at)
            request_settle(admission=admission, entry=UsageEntry(
                request_id=f"c{i}", principal=c, requested_model="m", cost=D("0.5")))
        assert not UsageRollup.objects.filter(team_id=c.team_id).exists()
        monkeypatch.setattr(rollups, "INLINE", True)
        call_command("rebuild_rollups", "--since", "2026-11-27", "--until", "2026-11-28",
                     "--json")
        assert_rollups_match_ledger()

    def test_the_bucket_digest_is_the_same_in_python_and_sql(self, traffic):
        """PostgreSQL rebuilds in SQL: its digest must be the one settlement computes."""
        for row in UsageRollup.objects.all():
            assert row.bucket == bucket_key(row.grain, row.start,
                                            [getattr(row, d) for d in DIMENSIONS])

    def test_windows_read_whole_days_as_day_rows_and_the_rest_as_hours(self, traffic):
        window = rollups.rollups_since(T0 + timedelta(minutes=5))
        grains = set(window.values_list("grain", "start"))
        assert (RollupGrain.HOUR, hour_start(T0)) in grains
        assert (RollupGrain.DAY, day_start(T0) + timedelta(days=1)) in grains
        assert (RollupGrain.DAY, day_start(T0)) not in grains
        total = sum(window.values_list("request_count", flat=True))
        assert total == UsageRecord.objects.filter(created_at__gte=hour_start(T0)).count()


@pytest.mark.django_db
class TestFold:
    def test_settlement_adds_to_no_coarse_row_of_a_day_not_folded(self, make_api_key):
        a = principal_of(make_api_key(team="team-a", user="alice").api_key)
        admission = request_admit(principal=a, request_id="r", estimated_cost=D("1"))
        request_settle(admission=admission, entry=UsageEntry(
            request_id="r", principal=a, requested_model="m", cost=D("0.1")))
        request_settle(admission=None, entry=UsageEntry(
            request_id="h", principal=a, requested_model="m", cache_status="hit_exact"))
        assert set(UsageRollup.objects.values_list("grain", flat=True)) == {
            RollupGrain.HOUR, RollupGrain.DAY}
        assert_rollups_match_ledger()

    @pytest.mark.parametrize("traffic", ["unfolded"], indirect=True)
    def test_the_fold_catches_up_on_every_day_over_and_only_those(self, traffic):
        assert not UsageRollup.objects.filter(grain__in=COARSE_GRAINS).exists()
        first = day_start(T0)
        now = first + timedelta(days=4, hours=1)
        assert rollups_fold(now=now) == 4  # two days of traffic, two empty ones
        assert folded_until() == first + timedelta(days=4)
        assert_rollups_match_ledger()
        assert rollups_fold(now=now) == 0
        # A day is folded FOLD_DELAY after it ends, not before.
        assert rollups_fold(now=first + timedelta(days=5) + FOLD_DELAY / 2) == 0
        assert rollups_fold(now=first + timedelta(days=5) + FOLD_DELAY) == 1

    @pytest.mark.parametrize("traffic", ["unfolded"], indirect=True)
    def test_reports_equal_before_and_after_the_fold(self, traffic):
        from llmops.observability.savings import savings_summary
        from llmops.observability.selectors import dashboard_data

        since = day_start(T0) - timedelta(days=1)

        def reports():
            return (spend_report(period="month", now=T0), team_spend_summary(since=since),
                    dashboard_data(since=since), savings_summary(since=since).as_dict())

        before = reports()
        rollups_fold(now=T0 + timedelta(days=3))
        assert UsageRollup.objects.filter(grain__in=COARSE_GRAINS).exists()
        assert reports() == before

    @pytest.mark.parametrize("traffic", ["unfolded"], indirect=True)
    def test_a_row_written_late_into_a_folded_day_is_added_to_its_coarse_rows(self, traffic):
        a, _ = traffic
        rollups_fold(now=T0 + timedelta(days=1, hours=3))  # T0's day only
        late = T0 + timedelta(hours=1)  # admitted before midnight, settled days later
        admission = request_admit(principal=a, request_id="late", estimated_cost=D("1"),
                                  now=late)
        request_settle(admission=admission, entry=UsageEntry(
            request_id="late", principal=a, requested_model="m", cost=D("0.25")))
        request_settle(admission=None, entry=UsageEntry(
            request_id="late-hit", principal=a, requested_model="m", cache_status="hit_exact",
            cost_saved=D("0.01"), recorded_at=late))
        # ... and into the next day, not folded: its coarse rows come with its fold.
        next_day = day_start(T0) + timedelta(days=1, hours=5)
        admission = request_admit(principal=a, request_id="next", estimated_cost=D("1"),
                                  now=next_day)
        request_settle(admission=admission, entry=UsageEntry(
            request_id="next", principal=a, requested_model="m", cost=D("0.5")))
        assert_rollups_match_ledger()
        rollups_fold(now=T0 + timedelta(days=2, hours=3))
        assert_rollups_match_ledger()

    @pytest.mark.parametrize("traffic", ["unfolded"], indirect=True)
    def test_with_nothing_folded_readers_use_day_rows_and_the_fold_starts_at_the_first(
            self, traffic):
        fold_until(None)
        window = team_spend_summary(since=T0 - timedelta(hours=1))
        assert sum(r["requests"] for r in window) == UsageRecord.objects.count()
        assert rollups_fold(now=day_start(T0) + timedelta(days=2, hours=1)) == 2
        assert folded_until() == day_start(T0) + timedelta(days=2)
        assert_rollups_match_ledger()

    @pytest.mark.parametrize("traffic", ["unfolded"], indirect=True)
    def test_rebuild_leaves_days_not_folded_without_coarse_rows(self, traffic):
        call_command("rebuild_rollups", "--json")
        call_command("rebuild_rollups", "--coarse-only", "--json")
        assert not UsageRollup.objects.filter(grain__in=COARSE_GRAINS).exists()
        assert_rollups_match_ledger()

    def test_the_fold_is_a_beat_task_that_runs_without_a_broker(self, settings, make_api_key):
        from budgets import tasks

        schedule = settings.CELERY_BEAT_SCHEDULE["budgets-rollups-fold"]
        assert schedule["task"] == tasks.rollups_fold.name
        a = principal_of(make_api_key(team="team-a", user="alice").api_key)
        over = day_start(datetime.now(UTC) - FOLD_DELAY) - timedelta(days=1)  # the last day over
        fold_until(over)
        request_settle(admission=None, entry=UsageEntry(
            request_id="h", principal=a, requested_model="m", cache_status="hit_exact",
            recorded_at=over + timedelta(hours=12)))
        assert not UsageRollup.objects.filter(grain__in=COARSE_GRAINS).exists()
        assert tasks.rollups_fold.delay().get() == 1
        assert_rollups_match_ledger()
        assert UsageRollup.objects.filter(grain__in=COARSE_GRAINS).exists()


def _usd12(value):
    return value.quantize(D("1e-12")) if isinstance(value, D) else value


def _ledger_scope_sums(qs, field):
    out = defaultdict(lambda: [0, D(0), D(0), 0])
    for row in qs:
        key = getattr(row, field) if field else None
        out[key][0] += 1
        out[key][1] += row.cost
        out[key][2] += row.cost_saved
        out[key][3] += row.cache_status.startswith("hit")
    return dict(out)


@pytest.mark.django_db
class TestReportsReadRollups:
    def test_budget_report_equals_the_ledger(self, make_api_key):
        a = principal_of(make_api_key(team="team-a", user="alice").api_key)
        b = principal_of(make_api_key(team="team-b", user="bob").api_key)
        for i, p in enumerate([a, b, a]):
            admission = request_admit(principal=p, request_id=f"x{i}", estimated_cost=D("1"))
            request_settle(admission=admission, entry=UsageEntry(
                request_id=f"x{i}", principal=p, requested_model="m", cost=D("0.1") * (i + 1)))
        request_settle(admission=None, entry=UsageEntry(
            request_id="hit", principal=b, requested_model="m", cache_status="hit_exact",
            cost_saved=D("0.05")))
        rows = {(r.scope, r.name): r for r in spend_report(period="day")}
        for scope, field, name_of in (("team", "team_id", {a.team_id: "team-a",
                                                            b.team_id: "team-b"}),
                                      ("key", "api_key_id", {a.api_key_id: a.key_prefix,
                                                             b.api_key_id: b.key_prefix})):
            for target, (n, cost, saved, hits) in _ledger_scope_sums(
                    UsageRecord.objects.all(), field).items():
                r = rows[(scope, name_of[target])]
                assert (r.requests, r.spent, r.saved, r.cache_hits) == (n, cost, saved, hits)
        (n, cost, saved, hits), = _ledger_scope_sums(UsageRecord.objects.all(), None).values()
        r = rows[("global", "global")]
        assert (r.requests, r.spent, r.saved, r.cache_hits) == (n, cost, saved, hits)

    def test_team_summary_equals_the_ledger(self, traffic):
        since = T0 - timedelta(hours=1)
        summary = {r["team_id"]: r for r in team_spend_summary(since=since)}
        for team_id, (n, cost, saved, hits) in _ledger_scope_sums(
                UsageRecord.objects.filter(created_at__gte=hour_start(since)), "team_id").items():
            row = summary[team_id]
            assert (row["requests"], row["spent"], row["saved"], row["hits"]) == (
                n, cost, saved, hits)

    def test_reports_read_no_raw_ledger_row(self, traffic):
        from django.test.utils import CaptureQueriesContext

        from llmops.observability.savings import savings_summary
        from llmops.observability.selectors import dashboard_data

        ledger = UsageRecord._meta.db_table
        with CaptureQueriesContext(connection) as ctx:
            spend_report(period="month", now=T0)
            team_spend_summary(since=T0 - timedelta(days=30))
            dashboard_data(since=T0 - timedelta(days=30))
            savings_summary(since=T0 - timedelta(days=30))
            savings_summary(since=T0 - timedelta(days=30), team_id=traffic[0].team_id)
        assert [q["sql"] for q in ctx.captured_queries if ledger in q["sql"]] == []

    @pytest.mark.parametrize("since", [T0 - timedelta(days=30), T0 - timedelta(minutes=30),
                                       day_start(T0) + timedelta(days=1)])
    def test_savings_summary_equals_the_ledger(self, traffic, since):
        """Every figure, all teams (per-model day rows and hour rows) and one team (its day and
        hour rows), over whole days and from an hour."""
        from llmops.observability.savings import ROUTED, VERIFICATION, savings_summary
        from routing.models import ModelProfile, Tier

        ModelProfile.objects.create(name="m-strong", provider="openai", tier=Tier.PREMIUM,
                                    input_price_per_token=D("1e-6"),
                                    output_price_per_token=D("2e-6"))
        a, _ = traffic
        routed = set(UsageRecord.objects.filter(ROUTED).values_list("pk", flat=True))
        verify = set(UsageRecord.objects.filter(VERIFICATION).values_list("pk", flat=True))
        for team_id in (None, a.team_id):
            rows = UsageRecord.objects.filter(created_at__gte=hour_start(since))
            if team_id is not None:
                rows = rows.filter(team_id=team_id)
            rows = list(rows)
            shadow = [r for r in rows if r.shadow]

            def total(field, rs, test=lambda r: True):
                return sum((getattr(r, field) for r in rs if test(r)), D(0))

            expected = dict(
                requests=len(rows), spend=total("cost", rows),
                saved_exact=total("cache_saved", rows, lambda r: r.cache_status == "hit_exact"),
                saved_semantic=total("cache_saved", rows,
                                     lambda r: r.cache_status == "hit_semantic"),
                saved_routing=total("routing_saved", rows),
                routing_extra_cost=-total("routing_saved", rows, lambda r: r.routing_saved < 0),
                saved_total=total("cost_saved", rows),
                exact_hits=sum(r.cache_status == "hit_exact" for r in rows),
                semantic_hits=sum(r.cache_status == "hit_semantic" for r in rows),
                routed=sum(r.pk in routed for r in rows),
                routed_strong=sum(r.pk in routed and r.served_model == "m-strong" for r in rows),
                shadow_requests=len(shadow),
                shadow_exact_hits=sum(r.shadow_cache_status == "hit_exact" for r in shadow),
                shadow_semantic_hits=sum(r.shadow_cache_status == "hit_semantic"
                                         for r in shadow),
                shadow_saved_exact=total("shadow_cache_saved", shadow,
                                         lambda r: r.shadow_cache_status == "hit_exact"),
                shadow_saved_semantic=total("shadow_cache_saved", shadow,
                                            lambda r: r.shadow_cache_status == "hit_semantic"),
                shadow_saved_routing=total("shadow_routing_saved", shadow),
                shadow_routed=sum(r.shadow_model != "" for r in shadow),
                shadow_routed_strong=sum(r.shadow_model == "m-strong" for r in shadow),
                verifications=sum(r.pk in verify for r in rows),
                verification_cost=total("cost", rows, lambda r: r.pk in verify),
            )
            summary = savings_summary(since=since, team_id=team_id)
            # To the ledger's 1e-12 USD: SQLite sums decimals in binary floating point.
            assert {k: _usd12(getattr(summary, k)) for k in expected} == {
                k: _usd12(v) for k, v in expected.items()}
            assert expected["requests"] and expected["shadow_requests"]  # something to sum
            json.dumps(summary.as_dict())  # counts stay ints, amounts decimal strings
