"""Refused requests: one JSON line on logger "llmops.refusal" and llm_requests_refused_total each.

Budget refusals (402) are reported by admission (budgets/services.py), which also counts them on
the refusing budget counter.
"""

import logging
from decimal import Decimal

from llmops import metrics

logger = logging.getLogger("llmops.refusal")

BUDGET = "budget"
RATE_LIMIT = "rate_limit"


def refusal_report(*, reason: str, scope: str, request_id: str, api_key_id: int | None,
                   key_prefix: str | None, user_id: int | None, team_id: int | None,
                   team: str | None, requested_model: str | None, period: str,
                   limit: Decimal | int, remaining: Decimal | int, requested: Decimal | int,
                   unit: str, **details) -> None:
    """Log the refusal's JSON line and count it in llm_requests_refused_total{reason,scope}.

    Names the key by its prefix only. Amounts are exact strings, as in the request log line;
    `unit` says what `limit`, `remaining` and `requested` count ("usd" or "requests").
    """
    metrics.observe_refusal(reason=reason, scope=scope)
    logger.warning("request refused", extra={
        "request_id": request_id,
        "reason": reason,
        "scope": scope,
        "key_prefix": key_prefix,
        "api_key_id": api_key_id,
        "user_id": user_id,
        "team_id": team_id,
        "team": team,
        "requested_model": requested_model or None,
        "period": period,
        "limit": str(limit),
        "remaining": str(remaining),
        "requested": str(requested),
        "unit": unit,
        **details,
    })
