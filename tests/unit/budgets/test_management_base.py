"""The budget commands' lookups: the names people type, turned into a budget's scope and target."""

import pytest
from django.core.management import CommandError

from budgets.management.base import BudgetCommand
from budgets.models import BudgetScope

pytestmark = pytest.mark.django_db


class TestGetTarget:
    def test_each_option_names_its_scope(self, api_key):
        command, key = BudgetCommand(), api_key.api_key
        assert command.get_target(key=f"llmops-{key.prefix}.secret") == (
            BudgetScope.KEY, {"api_key": key})
        assert command.get_target(user="alice") == (BudgetScope.USER, {"user": key.user})
        assert command.get_target(team="team-a") == (BudgetScope.TEAM, {"team": key.team})
        assert command.get_target() == (BudgetScope.GLOBAL, {})

    def test_an_unknown_name_is_a_command_error(self, db):
        with pytest.raises(CommandError, match="No user 'nobody'"):
            BudgetCommand().get_target(user="nobody")
