"""Celery tasks of observability: thin wrappers around the services of the same name."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="llmops.observability.budget_utilization_refresh", ignore_result=True)
def budget_utilization_refresh() -> int:
    """Recompute the budget utilization snapshot that /metrics publishes."""
    from llmops.observability.budget_gauge import budget_utilization_refresh as refresh

    return refresh()


@shared_task(name="llmops.observability.judge_response", ignore_result=True)
def judge_response(request_id: str, messages: list[dict], answer: str, team_id: int) -> None:
    """Have the judge grade one sampled answer (texts travel with the task: none are stored)."""
    from llmops.observability.feedback import FeedbackAlreadyRecorded
    from llmops.observability.judge import JudgeUnavailable, response_judge

    try:
        response_judge(request_id=request_id, team_id=team_id, messages=messages, answer=answer)
    except (JudgeUnavailable, FeedbackAlreadyRecorded) as exc:
        logger.info("judge skipped", extra={"request_id": request_id, "reason": str(exc)})
    except ValueError as exc:
        # An unparseable verdict is the judge's failure, not the answer's: count nothing.
        logger.warning("judge reply unusable", extra={"request_id": request_id,
                                                      "reason": str(exc)})
