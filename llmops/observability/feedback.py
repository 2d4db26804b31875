"""Quality verdicts: store one per source and answer, publish it, pass it on to the cache."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from budgets.models import UsageRecord
from llmops import metrics
from llmops.errors import GatewayError
from llmops.models import ResponseFeedback

logger = logging.getLogger(__name__)


class FeedbackTargetNotFound(GatewayError):
    status_code = 404
    default_detail = "No request with this id was answered for your team."
    default_code = "request_not_found"


class FeedbackAlreadyRecorded(GatewayError):
    status_code = 409
    default_detail = "Feedback for this request was already recorded."
    default_code = "feedback_exists"


@dataclass(frozen=True)
class Verdict:
    """A score in [0, 10] and, when it is clear enough, whether the answer was right."""

    score: float
    correct: bool | None

    @property
    def label(self) -> str:
        """Return the bounded verdict label of llm_feedback_total."""
        return {True: "right", False: "wrong", None: "neutral"}[self.correct]


def verdict_from(*, score: float | None = None, thumbs: str | None = None) -> Verdict:
    """Return the verdict of a score (0-10) and/or thumbs ("up"/"down"); thumbs decide `correct`.

    Thumbs alone score 10 or 0. A score alone counts as right at QUALITY_GOOD_SCORE and above,
    wrong at QUALITY_BAD_SCORE and below, and says nothing about correctness in between.
    """
    if score is None and thumbs is None:
        raise ValueError("a verdict needs a score or thumbs")
    if thumbs is not None:
        correct = thumbs == "up"
        return Verdict(score=score if score is not None else (10.0 if correct else 0.0),
                       correct=correct)
    if score >= settings.QUALITY_GOOD_SCORE:
        return Verdict(score=score, correct=True)
    if score <= settings.QUALITY_BAD_SCORE:
        return Verdict(score=score, correct=False)
    return Verdict(score=score, correct=None)


def task_type_normalize(value: str | None) -> str:
    """Return `value` if it is a configured task type, else "general" (keeps labels bounded)."""
    value = (value or "").strip().lower()
    return value if value in settings.QUALITY_TASK_TYPES else "general"


def usage_record_for_team(*, request_id: str, team_id: int) -> UsageRecord:
    """Return the ledger row of `request_id` if it belongs to `team_id` (no cross-tenant votes)."""
    record = UsageRecord.objects.filter(request_id=request_id, team_id=team_id).first()
    if record is None:
        raise FeedbackTargetNotFound()
    return record


def response_feedback_create(
    *, usage_record: UsageRecord, source: str, verdict: Verdict, task_type: str = "general",
    hallucination: bool = False, comment: str = "", details: dict | None = None,
    prompt: list | None = None,
) -> ResponseFeedback:
    """Store a verdict on one answer and publish it to llm_response_quality_score on commit."""
    feedback = ResponseFeedback(
        usage_record=usage_record,
        source=source,
        score=verdict.score,
        correct=verdict.correct,
        hallucination=hallucination,
        model=usage_record.served_model or usage_record.requested_model,
        task_type=task_type_normalize(task_type),
        comment=comment,
        details=details or {},
        prompt=prompt,
    )
    feedback.full_clean(exclude=["usage_record"], validate_unique=False,
                        validate_constraints=False)
    try:
        with transaction.atomic():
            feedback.save()
            transaction.on_commit(lambda: metrics.observe_quality(
                model=feedback.model, task_type=feedback.task_type, score=feedback.score,
                source=source, verdict=verdict.label, hallucination=hallucination,
            ))
    except IntegrityError:
        # The unique (usage_record, source) constraint: one vote per source, enforced by the DB
        # so that two concurrent posts cannot both count.
        raise FeedbackAlreadyRecorded() from None
    return feedback


async def cache_feedback_forward(*, team_id: int, request_id: str, correct: bool | None) -> bool:
    """Tell the semantic cache whether the answer to team `team_id`'s request was right; return
    whether it acted on it.

    The cache may be absent or down: its feedback is an optimisation, never a reason to fail.
    """
    if correct is None:
        return False
    try:
        from semcache.gateway import cache_feedback
    except ImportError:
        return False
    try:
        return bool(await cache_feedback(team_id=team_id, request_id=request_id,
                                         correct=correct))
    except Exception:
        logger.warning("cache feedback failed", exc_info=True, extra={"request_id": request_id})
        return False
