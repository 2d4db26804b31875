"""Shared base of the cache commands: lookups that raise CommandError, JSON output."""

import json
import re
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SemcacheCommand(BaseCommand):
    def add_json_argument(self, parser):
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def write_json(self, payload) -> None:
        self.stdout.write(json.dumps(payload, indent=2, default=_default))

    def tenant_for(self, team: str) -> str:
        """Return the tenant of a team given by name or id ("shared": the opt-in pool)."""
        from semcache.namespaces import SHARED_TENANT

        if team == SHARED_TENANT:
            return SHARED_TENANT
        return f"team:{self.team_id(team)}"

    def team_id(self, team: str) -> int:
        from llmops.models import Team

        found = Team.objects.filter(name=team).first()
        if found is None and team.isdigit():
            found = Team.objects.filter(pk=int(team)).first()
        if found is None:
            raise CommandError(f"No team named or numbered {team!r}.")
        return found.pk

    @staticmethod
    def seconds(value: str) -> float:
        """Parse a duration like 90s, 15m, 2h, 1d."""
        match = _DURATION.match(value or "")
        if not match:
            raise CommandError(f"Not a duration: {value!r} (use e.g. 90s, 15m, 2h, 1d).")
        return float(match.group(1)) * _UNITS[match.group(2)]


def _default(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
