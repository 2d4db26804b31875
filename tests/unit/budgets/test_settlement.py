"""The ledger record type: one `UsageEntry` field per ledger column, one row per entry."""

from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal

from budgets.models import UsageRecord
from budgets.services import UsageEntry
from llmops.principal import Principal

CALLER = Principal(api_key_id=3, key_prefix="k3", user_id=4, team_id=5, team_name="team-e",
                   tier="standard")


class TestLedgerRow:
    def test_every_ledger_column_comes_from_the_entry(self):
        """A column added to UsageRecord without its entry field fails here, not in production."""
        columns = {f.name for f in UsageRecord._meta.concrete_fields if not f.primary_key}
        whose_and_when = {"api_key", "user", "team", "created_at"}
        entry_fields = {f.name for f in fields(UsageEntry)} - {"principal", "recorded_at"}
        assert columns - whose_and_when == entry_fields

    def test_the_row_carries_the_entry_the_caller_and_the_time(self):
        at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        entry = UsageEntry(request_id="r1", principal=CALLER, requested_model="auto",
                           served_model="m", attempted_models=["x", "m"], prompt_tokens=9,
                           cost=Decimal("0.1234567890123456"), status="upstream_error",
                           error_kind="timeout", http_status=504, cache_similarity=0.5)
        row = entry.ledger_row(created_at=at)
        assert row.pk is None and row.created_at == at
        assert (row.api_key_id, row.user_id, row.team_id) == (3, 4, 5)
        assert (row.request_id, row.requested_model, row.served_model) == ("r1", "auto", "m")
        assert row.attempted_models == ["x", "m"] and row.prompt_tokens == 9
        assert (row.status, row.error_kind, row.http_status) == ("upstream_error", "timeout", 504)
        assert row.cache_similarity == 0.5

    def test_amounts_are_at_the_ledger_precision(self):
        entry = UsageEntry(request_id="r1", principal=CALLER, requested_model="m",
                           estimated_cost=Decimal("0.3333333333333333"),
                           cost=Decimal("0.1234567890123456"), cost_saved=Decimal("2"))
        row = entry.ledger_row(created_at=entry.recorded_at)
        assert (row.estimated_cost, row.cost, row.cost_saved) == (
            Decimal("0.333333333333"), Decimal("0.123456789012"), Decimal("2.000000000000"))
        assert str(row.cost_saved) == "2.000000000000"
