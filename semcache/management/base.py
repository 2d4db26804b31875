"""Shared base of the cache commands: lookups that raise CommandError, JSON output, and the
refusal to act on an in-process store from a process of their own."""

import json
import re
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# Why a command run from the command line cannot act on the embedded store.
IN_PROCESS_STORE = (
    "The semantic cache uses the in-process store (SEMCACHE_REDIS_URL and REDIS_URL are unset): "
    "its entries live inside the server process and are lost when it restarts. This command "
    "runs in a process of its own and cannot reach them: {consequence} "
    "The running server's hits, misses and savings are at /metrics "
    "(semantic_cache_hits_total, semantic_cache_misses_total, llm_cost_saved_dollars_total) "
    "and on the dashboard (/dashboard/). Set REDIS_URL to keep the cache in Redis, shared by "
    "every process, and this command acts on it."
)


class SemcacheCommand(BaseCommand):
    # What the command could not do against an in-process store from its own process.
    in_process_consequence = "it would only see its own, empty, store."
    _from_command_line = False

    def run_from_argv(self, argv):
        # Only `manage.py <command>` comes through here (call_command does not): a process of
        # its own, which never shares an in-process store with a server.
        self._from_command_line = True
        return super().run_from_argv(argv)

    def require_shared_store(self) -> None:
        """Refuse, saying why, to act on an in-process store from a process of its own."""
        from django.conf import settings

        if self._from_command_line and not settings.SEMCACHE_REDIS_URL:
            raise CommandError(IN_PROCESS_STORE.format(consequence=self.in_process_consequence))

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
