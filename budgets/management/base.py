"""Shared base for budget commands: lookups that raise CommandError, Decimal option parsing."""

from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from budgets.models import BudgetScope
from llmops.models import ApiKey, Team


def usd(value: str) -> Decimal | None:
    """Parse a USD amount for argparse; "none" (or "") clears a limit."""
    if value.strip().lower() in {"", "none", "unset"}:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"Not an amount in USD: {value!r}") from None
    if amount < 0 or not amount.is_finite():
        raise CommandError(f"A limit must be a positive amount, got {value!r}")
    return amount


class BudgetCommand(BaseCommand):
    """Lookups by the names people type (key prefix, username, team name)."""

    def get_key(self, prefix: str) -> ApiKey:
        prefix = prefix.removeprefix("llmops-").split(".")[0]
        try:
            return ApiKey.objects.select_related("team", "user").get(prefix=prefix)
        except ApiKey.DoesNotExist:
            raise CommandError(f"No API key with prefix {prefix!r}") from None

    def get_user(self, username: str):
        try:
            return get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}") from None

    def get_team(self, name: str) -> Team:
        try:
            return Team.objects.get(name=name)
        except Team.DoesNotExist:
            raise CommandError(f"No team {name!r}") from None

    def get_target(self, *, key: str | None = None, user: str | None = None,
                   team: str | None = None) -> tuple[str, dict]:
        """Return the scope and target (`budget_set`'s `api_key`, `user` or `team`) that one of
        `key`, `user` or `team` names; none of them names the global budget."""
        if key:
            return BudgetScope.KEY, {"api_key": self.get_key(key)}
        if user:
            return BudgetScope.USER, {"user": self.get_user(user)}
        if team:
            return BudgetScope.TEAM, {"team": self.get_team(team)}
        return BudgetScope.GLOBAL, {}
