"""The usage a request is billed at: the provider's report when it can be trusted, else our count.

A provider's numbers go straight into the ledger, so they are checked first. Missing, negative,
non-integer, absurd counts (above anything the request could have produced) and under-reported
ones (below what the text alone must cost) are replaced by the gateway's own count, which is an
upper bound: the prompt bound the reservation was made from, and the answer's text counted as
the provider's tokenizer would at most. Every replacement is logged and counted
(`llm_provider_usage_rejected_total`).
"""

import logging

from llmops import metrics
from llmops.gateway.context import RequestContext
from llmops.providers.base import Usage
from routing.models import ModelProfile
from routing.tokens import estimate_text_tokens, message_text, tokenizer_count

logger = logging.getLogger("llmops.gateway")

# A reported count beyond this many times the most the request could bill (the larger of our
# upper bound and the model's window or output limit) is not a count but a lie or a bug.
ABSURD_FACTOR = 2
# A reported count below this share of the text's cl100k count is under-reported. Tokenizers
# differ (o200k and Gemini's count 10-40% fewer tokens than cl100k on some text, Anthropic's
# more), never by 75%; and the text's count leaves out framing, tools and images, so the floor
# is lower still than anything an honest provider reports.
UNDER_REPORT_FACTOR = 0.25


def local_usage(ctx: RequestContext, profile: ModelProfile, completion_text: str) -> Usage:
    """Return the gateway's own count: the prompt's upper bound on `profile` and the answer's
    text as the provider would at most count it, but never more output than the request's
    output limit (what was reserved, and sent upstream as max_tokens) unless the text itself
    is longer: an estimate's margin must not charge past the reservation, where limits leak."""
    from llmops.gateway.upstream import output_limit

    prompt = ctx.prompt_bounds.get(profile.name, ctx.estimated_prompt_tokens)
    completion = estimate_text_tokens(completion_text, provider=profile.provider)
    limit = output_limit(ctx, profile)
    if completion > limit and (tokenizer_count(completion_text) or 0) <= limit:
        completion = limit
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


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


def under_reported(ctx: RequestContext, reported: Usage, *, prompt_bound: int,
                   completion_text: str) -> bool:
    """Return whether `reported` is below what the request's text alone must cost.

    The text is tokenized only when a cheap check against the bound already looks low, so an
    honest report (most of them) costs no tokenizer pass over the prompt.
    """
    if reported.prompt_tokens < UNDER_REPORT_FACTOR * prompt_bound:
        # Routing already tokenized the prompt's texts: count through its memo.
        estimate = getattr(ctx.route, "prompt_estimate", None)
        count = tokenizer_count if estimate is None else estimate.tokenizer_count
        text = sum(count(message_text(m)) or 0 for m in ctx.messages)
        if reported.prompt_tokens < UNDER_REPORT_FACTOR * text:
            return True
    if completion_text:
        text = tokenizer_count(completion_text) or 0
        if reported.completion_tokens < UNDER_REPORT_FACTOR * text:
            return True
    return False


def billed_usage(ctx: RequestContext, profile: ModelProfile, reported: Usage | None,
                 completion_text: str) -> Usage:
    """Return the usage to charge for a call to `profile`: `reported` when it passes the
    checks, else the gateway's own count (logged and counted)."""
    from llmops.gateway.upstream import output_limit

    prompt_bound = ctx.prompt_bounds.get(profile.name, ctx.estimated_prompt_tokens)
    # The answer's UTF-8 bytes bound its tokens in any byte-level tokenizer: no pass needed.
    answer_bound = len(completion_text.encode("utf-8", "surrogatepass"))
    problem = usage_problem(
        reported,
        prompt_ceiling=ABSURD_FACTOR * max(prompt_bound, profile.context_window or 0),
        completion_ceiling=ABSURD_FACTOR * max(answer_bound, output_limit(ctx, profile)),
    )
    if problem is None and under_reported(ctx, reported, prompt_bound=prompt_bound,
                                          completion_text=completion_text):
        problem = "under_reported"
    if problem is None:
        return reported
    local = local_usage(ctx, profile, completion_text)
    if problem != "missing":
        logger.warning("provider usage rejected; billing the gateway's own count", extra={
            "request_id": ctx.request_id, "model": profile.name, "reason": problem,
            "reported": repr(reported)[:300], "billed": repr(local)})
    metrics.observe_usage_rejected(model=profile.name, reason=problem)
    return local
