"""The usage a request is billed at: the provider's report when it can be trusted, else our count.

A provider's numbers go straight into the ledger, so they are checked first. Missing, negative,
non-integer or absurd counts (above anything the request could have produced) are replaced by
the gateway's own count, which is an upper bound: the prompt bound the reservation was made
from, and the answer's text counted as the provider's tokenizer would at most. Every
replacement is logged and counted (`llm_provider_usage_rejected_total`).
"""

import logging

from llmops import metrics
from llmops.gateway.context import RequestContext
from llmops.providers.base import Usage
from routing.models import ModelProfile
from routing.tokens import estimate_text_tokens

logger = logging.getLogger("llmops.gateway")

# A reported count beyond this many times the most the request could bill (the larger of our
# upper bound and the model's window or output limit) is not a count but a lie or a bug.
ABSURD_FACTOR = 2


def local_usage(ctx: RequestContext, profile: ModelProfile, completion_text: str) -> Usage:
    """Return the gateway's own count: the prompt's upper bound on `profile` and the answer's
    text as the provider would at most count it."""
    prompt = ctx.prompt_bounds.get(profile.name, ctx.estimated_prompt_tokens)
    return Usage(prompt_tokens=prompt,
                 completion_tokens=estimate_text_tokens(completion_text,
                                                        provider=profile.provider))


def usage_problem(reported: Usage | None, *, prompt_ceiling: int,
                  completion_ceiling: int) -> str | None:
    """Return why `reported` cannot be billed (missing, non_integer, negative, absurd), or None."""
    if reported is None:
        return "missing"
    counts = (reported.prompt_tokens, reported.completion_tokens, reported.cached_tokens,
              reported.reasoning_tokens)
    if any(isinstance(n, bool) or not isinstance(n, int) for n in counts):
        return "non_integer"
    if any(n < 0 for n in counts):
        return "negative"
    if reported.prompt_tokens > prompt_ceiling or reported.completion_tokens > completion_ceiling:
        return "absurd"
    return None


def billed_usage(ctx: RequestContext, profile: ModelProfile, reported: Usage | None,
                 completion_text: str) -> Usage:
    """Return the usage to charge for a call to `profile`: `reported` when it passes the
    checks, else the gateway's own count (logged and counted)."""
    from llmops.gateway.upstream import output_limit

    local = local_usage(ctx, profile, completion_text)
    problem = usage_problem(
        reported,
        prompt_ceiling=ABSURD_FACTOR * max(local.prompt_tokens, profile.context_window or 0),
        completion_ceiling=ABSURD_FACTOR * max(local.completion_tokens,
                                               output_limit(ctx, profile)),
    )
    if problem is None:
        return reported
    if problem != "missing":
        logger.warning("provider usage rejected; billing the gateway's own count", extra={
            "request_id": ctx.request_id, "model": profile.name, "reason": problem,
            "reported": repr(reported)[:300], "billed": repr(local)})
    metrics.observe_usage_rejected(model=profile.name, reason=problem)
    return local
