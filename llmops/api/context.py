"""Build the pipeline's RequestContext from an authenticated, validated API request."""

from django.conf import settings

from llmops.api.serializers import FORWARDED_PARAMS
from llmops.gateway.context import CacheControl, RequestContext, SavingsOptions
from llmops.principal import Principal

# Request headers steps may read (cache threshold overrides, routing hints).
_FORWARDED_HEADER_PREFIX = "x-llmops-"


def principal_from_key(api_key) -> Principal:
    return Principal(
        api_key_id=api_key.pk,
        key_prefix=api_key.prefix,
        user_id=api_key.user_id,
        team_id=api_key.team_id,
        team_name=api_key.team.name,
        tier=api_key.tier,
    )


def _cache_control(header: str) -> CacheControl:
    directives = {part.strip().lower().split("=")[0] for part in header.split(",")}
    return CacheControl(no_cache="no-cache" in directives, no_store="no-store" in directives)


def request_cache_control(request) -> CacheControl:
    """Return the client's `Cache-Control` wishes for the cache."""
    return _cache_control(request.headers.get("Cache-Control", ""))


def default_max_tokens(team) -> int | None:
    """Return the output-token limit for a request of `team` that sets none: the team's
    `default_max_tokens`, else LLMOPS_DEFAULT_MAX_TOKENS, else None (the model's max output)."""
    return team.default_max_tokens or settings.LLMOPS_DEFAULT_MAX_TOKENS or None


def savings_options(team) -> SavingsOptions:
    """Return the savings options of `team`'s requests: its reference model and shadow mode,
    each falling back to the gateway-wide setting when the team sets none."""
    default = SavingsOptions.from_settings()
    return SavingsOptions(
        reference_model=team.reference_model or default.reference_model,
        shadow=default.shadow if team.shadow_mode is None else team.shadow_mode)


def context_from_request(request, data: dict) -> RequestContext:
    """Return the RequestContext for a validated chat completion request."""
    params = {name: data[name] for name in FORWARDED_PARAMS if data.get(name) is not None}
    stream_options = data.get("stream_options") or {}
    headers = {
        name.lower(): value for name, value in request.headers.items()
        if name.lower().startswith(_FORWARDED_HEADER_PREFIX)
    }
    ctx = RequestContext(
        request_id=getattr(request._request, "request_id", "") or request.META.get(
            "HTTP_X_REQUEST_ID", ""),
        principal=principal_from_key(request.auth),
        body=data,
        messages=[dict(m) for m in data["messages"]],
        requested_model=data["model"],
        params=params,
        stream=data.get("stream", False),
        include_usage=bool(stream_options.get("include_usage")),
        max_output_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
        default_max_tokens=default_max_tokens(request.auth.team),
        savings=savings_options(request.auth.team),
        metadata=data.get("metadata") or {},
        headers=headers,
        cache_control=request_cache_control(request),
    )
    if hasattr(request, "auth_seconds"):
        ctx.timings["auth"] = request.auth_seconds
    return ctx
