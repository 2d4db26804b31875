"""Recompute each profile's observed latency percentiles, TTFT and error rate from the ledger."""

import json as _json

from django.core.management.base import BaseCommand

from routing.services import profiles_refresh_observed


class Command(BaseCommand):
    help = ("Update observed p50/p95 latency, time to first token and error rate of every "
            "profile from recent ledger rows (ROUTING_OBSERVED_WINDOW_HOURS).")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, json: bool, **options):
        result = profiles_refresh_observed()
        if json:
            self.stdout.write(_json.dumps(result, indent=2, default=str))
            return
        for name, observed in result.items():
            self.stdout.write(
                f"{name}: p50 {observed['observed_latency_p50_ms']} ms, "
                f"p95 {observed['observed_latency_p95_ms']} ms, "
                f"ttft {observed['observed_ttft_p50_ms']} ms, "
                f"errors {observed['observed_error_rate']:.1%} ({observed['observed_samples']})")
        if not result:
            self.stdout.write("No ledger rows in the window.")
