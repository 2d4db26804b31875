"""Helpers for budget tests: a Principal for a key, an admit → settle shortcut."""

from decimal import Decimal

from budgets.services import UsageEntry, request_admit, request_settle
from llmops.principal import Principal


def principal_of(api_key) -> Principal:
    """Return the Principal the gateway builds for `api_key`."""
    return Principal(api_key_id=api_key.pk, key_prefix=api_key.prefix, user_id=api_key.user_id,
                     team_id=api_key.team_id, team_name=api_key.team.name, tier=api_key.tier)


def spend(principal: Principal, request_id: str, reserve: str, cost: str, **kwargs):
    """Admit with `reserve`, settle at `cost`; return the ledger row."""
    admission = request_admit(principal=principal, request_id=request_id,
                              estimated_cost=Decimal(reserve), **kwargs)
    return request_settle(admission=admission, entry=UsageEntry(
        request_id=request_id, principal=principal, requested_model="m", served_model="m",
        estimated_cost=Decimal(reserve), cost=Decimal(cost)))
