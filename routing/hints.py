"""Routing hints a caller may send in `metadata` or headers, parsed and validated."""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from routing.errors import InvalidRequest

# metadata key → header name (headers reach routing lower-cased).
HINT_HEADERS = {
    "min_quality": "x-llmops-min-quality",
    "max_latency_ms": "x-llmops-max-latency-ms",
    "max_cost": "x-llmops-max-cost",
    "complexity": "x-llmops-complexity",
}


@dataclass(frozen=True)
class Hints:
    """Optional caller wishes for auto routing."""

    min_quality: float | None = None
    max_latency_ms: int | None = None
    max_cost: Decimal | None = None
    complexity: str | None = None


def _raw(name: str, metadata: dict, headers: dict) -> object:
    value = (metadata or {}).get(name)
    if value is None:
        value = (headers or {}).get(HINT_HEADERS[name])
    return None if value in (None, "") else value


def parse_hints(metadata: dict, headers: dict, *, complexity_levels: dict) -> Hints:
    """Return the hints in `metadata` (preferred) or headers; InvalidRequest when malformed."""
    values: dict = {}
    raw = _raw("min_quality", metadata, headers)
    if raw is not None:
        try:
            values["min_quality"] = float(raw)
        except (TypeError, ValueError):
            values["min_quality"] = -1.0
        if not 0.0 <= values["min_quality"] <= 1.0:
            raise InvalidRequest("min_quality must be a number between 0 and 1.",
                                 param="metadata.min_quality")
    raw = _raw("max_latency_ms", metadata, headers)
    if raw is not None:
        try:
            values["max_latency_ms"] = int(raw)
        except (TypeError, ValueError):
            values["max_latency_ms"] = 0
        if values["max_latency_ms"] <= 0:
            raise InvalidRequest("max_latency_ms must be a positive integer.",
                                 param="metadata.max_latency_ms")
    raw = _raw("max_cost", metadata, headers)
    if raw is not None:
        try:
            values["max_cost"] = Decimal(str(raw))
        except InvalidOperation:
            values["max_cost"] = Decimal(-1)
        if not values["max_cost"].is_finite() or values["max_cost"] <= 0:
            raise InvalidRequest("max_cost must be a positive number of USD.",
                                 param="metadata.max_cost")
    raw = _raw("complexity", metadata, headers)
    if raw is not None:
        if str(raw) not in complexity_levels:
            raise InvalidRequest(
                f"complexity must be one of {', '.join(sorted(complexity_levels))}.",
                param="metadata.complexity")
        values["complexity"] = str(raw)
    return Hints(**values)
