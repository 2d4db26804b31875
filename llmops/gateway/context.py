"""What the pipeline knows about one request, shared by its steps (cache, routing, budgets)."""

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from llmops.principal import Principal


@dataclass(frozen=True)
class CacheControl:
    """The client's `Cache-Control` wishes: skip the lookup, or do not store the answer."""

    no_cache: bool = False
    no_store: bool = False


@dataclass(frozen=True)
class SavingsOptions:
    """How a request's savings are measured (docs/savings.md): the model its team would call
    without llmops for `auto` and aliases, and whether the cache and routing only shadow."""

    reference_model: str = ""
    shadow: bool = False

    @classmethod
    def from_settings(cls) -> "SavingsOptions":
        """Return the gateway-wide options (LLMOPS_REFERENCE_MODEL, LLMOPS_SHADOW_MODE)."""
        return cls(reference_model=settings.LLMOPS_REFERENCE_MODEL,
                   shadow=settings.LLMOPS_SHADOW_MODE)


# Generation parameters that change the answer, so they belong to a cache namespace.
ANSWER_PARAMS = (
    "temperature", "top_p", "stop", "tools", "tool_choice", "response_format", "seed",
    "presence_penalty", "frequency_penalty", "logit_bias", "parallel_tool_calls",
)


@dataclass
class RequestContext:
    """One chat completion request as the pipeline sees it.

    `body` is the validated request; `params` are the generation parameters forwarded upstream
    (OpenAI names). Steps write their findings here: the semantic cache sets `embedding` and, from
    the same forward pass, `embedding_layers` (which routing reuses), routing sets `route`, and
    timings accumulate in `timings` (seconds).
    """

    request_id: str
    principal: Principal
    body: dict
    messages: list[dict]
    requested_model: str
    params: dict
    stream: bool = False
    # The API the request came through (budgets.models.Endpoint), recorded in its ledger row.
    endpoint: str = "chat.completions"
    include_usage: bool = False
    max_output_tokens: int | None = None  # the request's own max_tokens / max_completion_tokens
    # The team's (or LLMOPS_DEFAULT_MAX_TOKENS') limit for a request that set none: sent
    # upstream and reserved in place of the model's max output. Never a routing constraint.
    default_max_tokens: int | None = None
    metadata: dict = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    cache_control: CacheControl = field(default_factory=CacheControl)
    started: float = field(default_factory=time.perf_counter)
    # The team's savings options (a front door that sets none gets the gateway-wide ones).
    savings: SavingsOptions = field(default_factory=SavingsOptions.from_settings)

    embedding: Any = None  # numpy vector of the prompt, set by the semantic cache
    # {layer: numpy vector}: the embedder's mean-pooled intermediate layers of the same pass
    # (None when the embedder gave none); routing predicts from them.
    embedding_layers: dict | None = None
    # Whether the semantic cache should pool those layers: not for a request that routing will
    # not predict for (it names a model), which saves part of the embedding's CPU.
    embedding_layers_wanted: bool = True
    cache_status: str = "miss"
    cache_similarity: float | None = None
    route: Any = None  # routing.router.RouteDecision
    # The usable model the request would have gone to without llmops (routing.reference), or
    # None: no routing saving is claimed. Set with the routing decision.
    reference: Any = None
    # Shadow mode's findings (llmops.gateway.shadow.ShadowFindings); None outside shadow mode.
    shadow: Any = None
    estimated_prompt_tokens: int = 0
    # {profile name: upper bound on the prompt tokens it bills}: the reservation's basis, and
    # the local count when a provider's usage is missing, invalid or cut off.
    prompt_bounds: dict[str, int] = field(default_factory=dict)
    # Output-token limit lowered to what the remaining budget covers, for a request that set
    # no max_tokens and would otherwise be refused (sent upstream as max_tokens).
    output_clamp: int | None = None
    estimated_cost: Decimal = Decimal(0)
    timings: dict[str, float] = field(default_factory=dict)

    def answer_params(self) -> dict:
        """Return the generation parameters that change the answer (for cache namespaces)."""
        return {k: self.params[k] for k in ANSWER_PARAMS if self.params.get(k) is not None}

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)
