"""Prepare the bench database: create (or recreate) it, migrate, add mock profiles, issue a key.

Runs inside Django with the bench environment (see bench/servers.py) and prints one JSON object
``{"key": ...}`` (and ``"keys"``: one per ``--teams`` name). Usage:
python -m bench.llmops_setup --mock-url URL [--reset] --models a=b ... [--profile-fields JSON]
[--teams t1 t2 ...]
"""

import argparse
import io
import json
import os
import sys
from urllib.parse import urlparse


def ensure_database(url: str, *, reset: bool) -> None:
    """Create the PostgreSQL database named in `url` (dropping it first when `reset`)."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and reset:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def upsert_profiles(mock_url: str, models: dict[str, str],
                    fields: dict[str, dict] | None = None) -> None:
    """Point one OpenAI-compatible profile per public name at the mock's model id; `fields`
    overrides a profile's defaults by name (prices, tier, quality_score, ...)."""
    from decimal import Decimal

    from routing.models import ModelProfile

    for name, upstream in models.items():
        ModelProfile.objects.update_or_create(name=name, defaults={
            "provider": "openai_compatible", "upstream_model": upstream,
            "base_url": f"{mock_url}/v1", "enabled": True,
            "input_price_per_token": Decimal("0.0000005"),
            "output_price_per_token": Decimal("0.0000015"),
            "context_window": 16384, "max_output_tokens": 4096, "quality_score": 0.7,
            "typical_latency_ms": 100, "fallbacks": [], "options": {},
            **(fields or {}).get(name, {}),
        })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mock-url", required=True, help="Base URL of the mock upstream.")
    parser.add_argument("--reset", action="store_true", help="Drop and recreate the database.")
    parser.add_argument("--models", nargs="+", default=[], metavar="NAME=UPSTREAM",
                        help="Profiles to create: public name = mock model id.")
    parser.add_argument("--profile-fields", default="{}",
                        help="JSON {name: {field: value}} overriding the profiles' defaults.")
    parser.add_argument("--teams", nargs="*", default=[],
                        help="Also issue one key for each of these teams.")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        ensure_database(url, reset=args.reset)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    upsert_profiles(args.mock_url, dict(item.split("=", 1) for item in args.models),
                    json.loads(args.profile_fields))
    keys = {team: issue_key(team) for team in ["bench", *args.teams]}
    sys.stdout.write(json.dumps({"key": keys.pop("bench"), "keys": keys}) + "\n")


def issue_key(team: str) -> str:
    """Return a new API key of `team` (created if new)."""
    from django.core.management import call_command

    out = io.StringIO()
    call_command("create_api_key", team=team, user=team, json=True, stdout=out)
    return json.loads(out.getvalue())["key"]


if __name__ == "__main__":
    main()
