"""Helpers for gateway unit tests: a request context and unsaved model profiles."""

from decimal import Decimal

from llmops.gateway.context import RequestContext
from llmops.principal import Principal
from routing.models import ModelProfile

CALLER = Principal(api_key_id=1, key_prefix="k1", user_id=1, team_id=1, team_name="team-a",
                   tier="standard")


def request(*, principal: Principal = CALLER, model: str = "m", **fields) -> RequestContext:
    """Return the context of a one-message chat request for `model`; `fields` override."""
    values = {"body": {}, "messages": [{"role": "user", "content": "hello"}], "params": {},
              **fields}
    return RequestContext(request_id="req-1", principal=principal, requested_model=model,
                          **values)


def profile(name: str = "m", *, input_price: str = "0.000001", output_price: str = "0.000002",
            **fields) -> ModelProfile:
    """Return an unsaved profile priced per token (USD); `fields` override."""
    values = {"provider": "openai", "upstream_model": name, **fields}
    return ModelProfile(name=name, input_price_per_token=Decimal(input_price),
                        output_price_per_token=Decimal(output_price), **values)
