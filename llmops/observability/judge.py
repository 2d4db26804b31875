"""The sampled LLM judge: a configured profile scores answers (0-10) and flags unsupported claims.

The ledger stores no prompt or answer text, so the gateway hands the texts of a sampled answer to
the `judge_response` task; the judged messages are kept on the feedback row, which is what makes
judged answers exportable as routing examples.
"""

import asyncio
import json
import logging
import random
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from budgets.models import UsageRecord
from llmops.background import Background
from llmops.models import FeedbackSource, ResponseFeedback
from llmops.observability.feedback import (
    Verdict,
    cache_feedback_forward,
    response_feedback_create,
    verdict_from,
)
from llmops.providers.base import ProviderCall
from llmops.providers.http import run_in_new_loop
from llmops.providers.registry import get_adapter
from routing.models import ModelProfile
from routing.tokens import message_text

logger = logging.getLogger(__name__)

JUDGE_INSTRUCTIONS = (
    "You grade the answer an AI assistant gave to a conversation. Score its quality from 0 "
    "(wrong or useless) to 10 (correct, complete and clear). List every claim in the answer "
    "that the conversation does not support and that is not well-established fact. Reply with "
    'JSON only: {"score": <0-10>, "task_type": "<one of: %(task_types)s>", '
    '"unsupported_claims": ["..."], "rationale": "<one sentence>"}'
)
# The answer and conversation are truncated for the judge: a grade needs the gist, and an
# unbounded prompt would make the judge cost more than the answer it grades.
MAX_JUDGED_CHARS = 12000


@dataclass(frozen=True)
class Judgement:
    """What the judge said about one answer."""

    score: float
    task_type: str
    unsupported_claims: list[str] = field(default_factory=list)
    rationale: str = ""


class JudgeUnavailable(Exception):
    """The judge is not configured, or its profile is missing or disabled."""


def judge_messages(*, messages: list[dict], answer: str) -> list[dict]:
    """Return the conversation the judge is asked to grade, as a chat request."""
    transcript = "\n".join(f"{m.get('role', 'user')}: {message_text(m)}" for m in messages)
    return [
        {"role": "system",
         "content": JUDGE_INSTRUCTIONS % {"task_types": ", ".join(settings.QUALITY_TASK_TYPES)}},
        {"role": "user", "content": (
            f"<conversation>\n{transcript[-MAX_JUDGED_CHARS:]}\n</conversation>\n"
            f"<answer>\n{answer[:MAX_JUDGED_CHARS]}\n</answer>"
        )},
    ]


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def judgement_parse(text: str) -> Judgement:
    """Return the judgement in the judge's reply (JSON, possibly wrapped in prose or fences)."""
    match = _JSON_OBJECT.search(text or "")
    if match is None:
        raise ValueError("the judge's reply holds no JSON object")
    data = json.loads(match.group(0))
    try:
        score = float(data["score"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("the judge's reply has no numeric score") from None
    if not 0 <= score <= 10:
        raise ValueError(f"the judge's score {score} is outside 0-10")
    claims = data.get("unsupported_claims") or []
    if not isinstance(claims, list):
        claims = [str(claims)]
    return Judgement(score=score, task_type=str(data.get("task_type") or "general"),
                     unsupported_claims=[str(c) for c in claims][:20],
                     rationale=str(data.get("rationale") or "")[:500])


def _judge_profile() -> ModelProfile:
    name = settings.QUALITY_JUDGE_MODEL
    if not name:
        raise JudgeUnavailable("QUALITY_JUDGE_MODEL is not set")
    profile = ModelProfile.objects.filter(name=name, enabled=True).first()
    if profile is None:
        raise JudgeUnavailable(f"judge profile {name!r} does not exist or is disabled")
    return profile


async def judgement_request(*, profile: ModelProfile, messages: list[dict], answer: str,
                            request_id: str) -> Judgement:
    """Ask `profile` to grade `answer` and return its parsed judgement."""
    adapter = get_adapter(profile.provider)
    call = ProviderCall(
        upstream_model=profile.upstream_model,
        messages=judge_messages(messages=messages, answer=answer),
        provider=profile.provider,
        params={"temperature": 0, "max_tokens": settings.QUALITY_JUDGE_MAX_TOKENS},
        base_url=profile.base_url,
        api_key=adapter.api_key_for(profile.api_key_env),
        options=dict(profile.options),
        request_id=f"judge-{request_id}",
    )
    completion = await adapter.complete(call)
    return judgement_parse(completion.message.get("content") or "")


def response_judge(*, request_id: str, team_id: int, messages: list[dict],
                   answer: str) -> ResponseFeedback:
    """Have the judge grade one answer (team `team_id`'s request `request_id`) and store its
    verdict with the answer's ledger row."""
    profile = _judge_profile()
    record = UsageRecord.objects.get(request_id=request_id, team_id=team_id)
    judgement = run_in_new_loop(lambda: judgement_request(
        profile=profile, messages=messages, answer=answer, request_id=request_id))
    verdict: Verdict = verdict_from(score=judgement.score)
    feedback = response_feedback_create(
        usage_record=record, source=FeedbackSource.JUDGE, verdict=verdict,
        task_type=judgement.task_type, hallucination=bool(judgement.unsupported_claims),
        details={"judge_model": profile.name, "rationale": judgement.rationale,
                 "unsupported_claims": judgement.unsupported_claims},
        prompt=messages,
    )
    asyncio.run(cache_feedback_forward(team_id=team_id, request_id=request_id,
                                       correct=verdict.correct))
    return feedback


def judge_enqueue(*, request_id: str, team_id: int, messages: list[dict], answer: str) -> None:
    """Queue the judge task; the texts travel in the message but never into task logs."""
    from llmops.observability.tasks import judge_response

    judge_response.apply_async(
        args=(request_id, messages, answer, team_id),
        argsrepr=repr((request_id, f"<{len(messages)} messages>", f"<{len(answer)} chars>",
                       team_id)),
    )


def _sampled() -> bool:
    rate = settings.QUALITY_JUDGE_SAMPLE_RATE
    return bool(settings.QUALITY_JUDGE_MODEL) and rate > 0 and random.random() < rate


# Queued judge hand-offs, kept alive until each is done.
_pending = Background()


async def judge_sample_maybe_async(*, request_id: str, team_id: int, messages: list[dict],
                                   answer: str) -> bool:
    """From the async request path: sample without I/O, hand a sampled answer off in background.

    The hand-off runs on the database pool so that, with no broker (tasks run eagerly), the
    judge's own ORM work and HTTP call never block the event loop or delay the response.
    """
    if not _sampled():
        return False
    from llmops.db import run_db

    _pending.spawn(run_db(judge_enqueue, request_id=request_id, team_id=team_id,
                          messages=messages, answer=answer))
    return True


def judge_sample_maybe(*, request_id: str, team_id: int, messages: list[dict],
                       answer: str) -> bool:
    """Queue the judge for this answer with probability QUALITY_JUDGE_SAMPLE_RATE (sync code).

    Call it after the ledger row is written. Returns whether the answer was sampled.
    """
    if not _sampled():
        return False
    transaction.on_commit(lambda: judge_enqueue(request_id=request_id, team_id=team_id,
                                                messages=messages, answer=answer))
    return True


async def answer_judged_right(*, messages: list[dict], answer: str,
                              request_id: str) -> bool | None:
    """Sample like `judge_sample_maybe` and, when sampled, have the judge grade `answer` as the
    answer to `messages` now (a cached answer under verification); return whether it is right,
    or None (not sampled, no judge, no clear verdict, or the judge failed)."""
    if not _sampled():
        return None
    from llmops.db import run_db

    try:
        profile = await run_db(_judge_profile)
        judgement = await judgement_request(profile=profile, messages=messages, answer=answer,
                                            request_id=request_id)
    except Exception:  # noqa: BLE001 - a judge that fails leaves the embedding's verdict
        logger.warning("judge: a verified hit was not judged", exc_info=True)
        return None
    return verdict_from(score=judgement.score).correct
