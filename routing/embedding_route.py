"""Which embedding profile serves a `/v1/embeddings` request, and what its inputs may bill.

Embeddings are never routed by quality or price: the client names the model, because vectors of
different models live in different spaces. A fallback is only taken to a profile of the same
upstream model (the same model on another endpoint or key), for the same reason.
"""

from dataclasses import dataclass, field

from routing.errors import InvalidRequest, ModelNotConfigured, ModelNotFound
from routing.models import ModelProfile
from routing.router import AUTO
from routing.selectors import profile_get_enabled
from routing.tokens import estimate_text_tokens, tokenizer_count


@dataclass
class EmbeddingRoute:
    """The profile that embeds, the same-model fallbacks, and per profile an upper bound on
    the tokens each input bills there."""

    profile: ModelProfile
    fallbacks: list[ModelProfile] = field(default_factory=list)
    # {profile name: [bound of input 0, bound of input 1, ...]}
    input_bounds: dict[str, list[int]] = field(default_factory=dict)

    @property
    def chain(self) -> list[ModelProfile]:
        return [self.profile, *self.fallbacks]

    def prompt_bounds(self, positions: list[int]) -> dict[str, int]:
        """Return {profile name: bound on the tokens of the inputs at `positions`}."""
        return {name: sum(bounds[i] for i in positions)
                for name, bounds in self.input_bounds.items()}


def input_bound(item: str | list[int], *, provider: str) -> int:
    """Return an upper bound on the tokens one input bills on `provider`: a token-id list its
    length, a string its cl100k count plus the provider family's margin, capped by its UTF-8
    bytes (routing/tokens.py)."""
    if isinstance(item, str):
        return estimate_text_tokens(item, provider=provider)
    return len(item)


def input_tokens(item: str | list[int]) -> int:
    """Return the tokens one input counts as (cl100k; its UTF-8 bytes without a tokenizer):
    what a cached input would have cost."""
    if not isinstance(item, str):
        return len(item)
    counted = tokenizer_count(item)
    return len(item.encode("utf-8", "surrogatepass")) if counted is None else counted


async def embedding_route(*, requested_model: str, inputs: list,
                          dimensions: int | None) -> EmbeddingRoute:
    """Return the route of an embeddings request; raise ModelNotFound for an unknown model,
    InvalidRequest for a chat model, a `dimensions` the model cannot make or an input longer
    than its context, and ModelNotConfigured when its key is not set."""
    profile = await profile_get_enabled(name=requested_model)
    if profile is None:
        if requested_model == AUTO:
            raise InvalidRequest("'auto' routes chat requests; name an embedding model (GET "
                                 "/v1/models lists them).", param="model",
                                 code="model_not_embedding")
        raise ModelNotFound(f"The model '{requested_model}' does not exist or is not enabled.",
                            param="model")
    if not profile.is_embedding:
        raise InvalidRequest(
            f"The model '{profile.name}' is a chat model: it makes no embeddings. Use an "
            "embedding model with /v1/embeddings.", param="model", code="model_not_embedding")
    unavailable = profile.unavailable_reason()
    if unavailable:
        raise ModelNotConfigured(
            f"Model '{profile.name}' cannot be called: {unavailable} on this gateway.",
            param="model")
    fixed = (profile.options or {}).get("dimensions")
    if dimensions is not None and fixed and dimensions != fixed:
        raise InvalidRequest(
            f"The model '{profile.name}' makes {fixed}-dimensional vectors only; omit "
            "`dimensions` or send that value.", param="dimensions",
            code="unsupported_dimensions")
    route = EmbeddingRoute(profile=profile, fallbacks=await _same_model_fallbacks(profile))
    for candidate in route.chain:
        bounds = [input_bound(item, provider=candidate.provider) for item in inputs]
        route.input_bounds[candidate.name] = bounds
        longest = max(bounds, default=0)
        if candidate is profile and longest > profile.context_window:
            position = bounds.index(longest)
            raise InvalidRequest(
                f"Input {position} (≤{longest} tokens estimated) exceeds the context of "
                f"'{profile.name}' ({profile.context_window} tokens an input).",
                param="input", code="context_length_exceeded")
    return route


async def _same_model_fallbacks(profile: ModelProfile) -> list[ModelProfile]:
    result = []
    for name in profile.fallbacks or []:
        candidate = await profile_get_enabled(name=name)
        if (candidate is not None and candidate.name != profile.name and candidate.is_embedding
                and candidate.upstream_model == profile.upstream_model
                and candidate.is_available()):
            result.append(candidate)
    return result
