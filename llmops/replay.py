"""Estimate what llmops would save on a request log, calling no provider (`manage.py replay`).

The log is in the OpenAI Batch input format, one `{"custom_id", "method", "url", "body"}` per
line. Each chat completion is validated as the API would, then, in the log's order:

- the cache is simulated in a scratch in-process store (never the gateway's): the real embedder,
  the real namespaces and lookup (exact key, then nearest neighbours with the decision and its
  guards) at the team's threshold; a miss stores its (unknown) answer there, so later requests
  can hit it;
- a miss is routed as the gateway routes it (`llmops.gateway.savings.route_request`: the team's
  reference model, the live profiles, predictor and cooldowns), and priced.

Prices: the prompt at each model's token bound (what admission reserves from), the answer at
`output_tokens` (capped by the request's max_tokens), the same counts on both sides. The bill as
sent prices each request at its reference model (the model it names; for `auto`, the team's
reference; without a usable reference, the model routing picks, so nothing is claimed); the
estimated bill prices a hit at 0 and a miss at the routed model (docs/savings.md).
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
from django.conf import settings

from llmops.api.context import savings_options
from llmops.api.serializers import FORWARDED_PARAMS, ChatCompletionInputSerializer
from llmops.gateway.context import RequestContext
from llmops.gateway.savings import route_request
from llmops.principal import Principal
from routing.errors import RoutingError
from routing.models import Tier
from routing.pricing import usage_cost
from semcache.embedder import get_embedder
from semcache.gateway import cache_enabled, embed_with_layers
from semcache.namespaces import build_scope
from semcache.policy import team_policy
from semcache.services import CacheEngine
from semcache.store.memory import MemoryStore

CHAT_URL = "/v1/chat/completions"
# The answer length priced when a request sets no max_tokens (routing.policy's typical answer).
DEFAULT_OUTPUT_TOKENS = 512


class ReplayError(ValueError):
    """A log that cannot be read (not JSON, not Batch lines)."""


def read_batch(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, Batch line) for each non-blank line of `path`."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReplayError(f"line {number}: not JSON ({exc})") from None
            if not isinstance(row, dict) or not isinstance(row.get("body"), dict):
                raise ReplayError(f"line {number}: not a Batch input line (needs a body)")
            yield number, row


@dataclass
class ReplayEstimate:
    """The estimated bill of a log against the bill as sent (USD), and what made the difference."""

    requests: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason → count (not priced)
    exact_hits: int = 0
    semantic_hits: int = 0
    routed: int = 0           # misses sent as `auto` or an alias
    routed_strong: int = 0    # ... that routing sent to a premium-tier model
    bill_as_sent: Decimal = Decimal(0)
    bill_estimated: Decimal = Decimal(0)
    saved_exact: Decimal = Decimal(0)
    saved_semantic: Decimal = Decimal(0)
    saved_routing: Decimal = Decimal(0)
    models: dict[str, int] = field(default_factory=dict)  # routed-to model → misses

    @property
    def saved_total(self) -> Decimal:
        return self.saved_exact + self.saved_semantic + self.saved_routing

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def as_dict(self) -> dict:
        data = {name: (str(value) if isinstance(value, Decimal) else value)
                for name, value in asdict(self).items()}
        cut = (1 - self.bill_estimated / self.bill_as_sent) if self.bill_as_sent else None
        data.update(saved_total=str(self.saved_total),
                    bill_cut=None if cut is None else float(cut))
        return data


@dataclass(frozen=True)
class ReplayCaller:
    """Whose traffic the log is: the team (its reference model, cache policy and budgets) and
    the tier its keys would have."""

    team: object | None  # llmops.models.Team, or None: gateway-wide settings, team id 0
    tier: str = "standard"

    def principal(self) -> Principal:
        team_id = self.team.pk if self.team is not None else 0
        name = self.team.name if self.team is not None else "replay"
        return Principal(api_key_id=0, key_prefix="replay", user_id=0, team_id=team_id,
                         team_name=name, tier=self.tier)


class CacheSimulation:
    """The semantic cache on a scratch in-process store: the real lookup, nothing shared."""

    def __init__(self, team_id: int, threshold: float, shared: bool) -> None:
        self.engine = CacheEngine(MemoryStore())
        self.team_id, self.threshold, self.shared = team_id, threshold, shared
        self.embedder = get_embedder()

    async def lookup(self, ctx: RequestContext):
        """Return (found or None, scope, vector); set the context's embedding for routing."""
        scope = build_scope(team_id=self.team_id, messages=ctx.messages,
                            requested_model=ctx.requested_model,
                            answer_params=ctx.answer_params(), shared=self.shared)
        found = self.engine.find_exact(scope)
        if found is not None or not scope.semantic:
            return found, scope, None
        vector, ctx.embedding_layers = await embed_with_layers(self.embedder, scope.query_text)
        ctx.embedding = vector
        found = self.engine.find_semantic(scope, np.asarray(vector, dtype=np.float32),
                                          threshold=self.threshold)
        return found, scope, vector

    def store(self, scope, vector, *, model: str, cost: Decimal) -> None:
        self.engine.put(scope, vector=vector, message={"role": "assistant", "content": ""},
                        finish_reason="stop", model=model, usage={}, cost=cost,
                        ttl_seconds=settings.CACHE_TTL_HOURS * 3600)


def _context(number: int, body: dict, caller: ReplayCaller) -> RequestContext:
    params = {name: body[name] for name in FORWARDED_PARAMS if body.get(name) is not None}
    ctx = RequestContext(
        request_id=f"replay-{number}", principal=caller.principal(), body=body,
        messages=[dict(m) for m in body["messages"]], requested_model=body["model"],
        params=params, stream=bool(body.get("stream")),
        max_output_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        metadata=body.get("metadata") or {})
    if caller.team is not None:
        ctx.savings = savings_options(caller.team)
        ctx.default_max_tokens = caller.team.default_max_tokens or None
    return ctx


async def _cache_for(caller: ReplayCaller) -> CacheSimulation | None:
    if not cache_enabled():
        return None
    team_id = caller.principal().team_id
    policy = await team_policy(team_id if caller.team is not None else None)
    if not policy.enabled:
        return None
    threshold = (policy.threshold if policy.threshold is not None
                 else settings.CACHE_SIMILARITY_THRESHOLD)
    return CacheSimulation(team_id, threshold, policy.shared)


async def replay_estimate(lines: list[tuple[int, dict]], *, caller: ReplayCaller,
                          output_tokens: int = DEFAULT_OUTPUT_TOKENS,
                          progress: Callable[[int], object] | None = None) -> ReplayEstimate:
    """Return the estimate for `lines` (read_batch's), in order; call `progress(1)` per line."""
    result = ReplayEstimate()
    cache = await _cache_for(caller)
    for number, row in lines:
        try:
            await _replay_line(number, row, caller, cache, output_tokens, result)
        finally:
            if progress is not None:
                progress(1)
    return result


async def _replay_line(number: int, row: dict, caller: ReplayCaller,
                       cache: CacheSimulation | None, output_tokens: int,
                       result: ReplayEstimate) -> None:
    if row.get("url", CHAT_URL) != CHAT_URL or str(row.get("method", "POST")).upper() != "POST":
        result.skip(f"not POST {CHAT_URL}")
        return
    serializer = ChatCompletionInputSerializer(data=row["body"])
    if not serializer.is_valid():
        result.skip("invalid request")
        return
    ctx = _context(number, serializer.validated_data, caller)
    found, scope, vector = (None, None, None) if cache is None else await cache.lookup(ctx)
    try:
        decision = await route_request(ctx)
    except RoutingError as exc:
        result.skip(f"refused: {getattr(exc, 'code', None) or type(exc).__name__}")
        return
    served = decision.profile
    reference = ctx.reference or served
    limit = ctx.max_output_tokens or ctx.default_max_tokens
    completion = min(limit, output_tokens) if limit else output_tokens
    estimate = decision.prompt_estimate

    def priced(profile) -> Decimal:
        prompt = (decision.prompt_bounds.get(profile.name) if estimate is None else
                  estimate.bound(provider=profile.provider, upstream_model=profile.upstream_model,
                                 context_window=profile.context_window))
        return usage_cost(profile, prompt_tokens=prompt or 0, completion_tokens=completion)

    as_sent = priced(reference)
    result.requests += 1
    result.bill_as_sent += as_sent
    if found is not None:
        if found.kind == "exact":
            result.exact_hits += 1
            result.saved_exact += as_sent
        else:
            result.semantic_hits += 1
            result.saved_semantic += as_sent
        return
    cost = priced(served)
    result.bill_estimated += cost
    result.saved_routing += as_sent - cost
    result.models[served.name] = result.models.get(served.name, 0) + 1
    if decision.reason not in ("explicit", "cooldown"):
        result.routed += 1
        result.routed_strong += served.tier == Tier.PREMIUM
    if cache is not None:
        cache.store(scope, vector, model=served.name, cost=cost)
