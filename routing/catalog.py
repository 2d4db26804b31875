"""Read a price catalog (`model_prices_and_context_window.json` schema) and map it to profiles."""

import json
from decimal import Decimal
from pathlib import Path

from routing.providers import provider_spec

# Catalog field → profile field, for per-token prices (USD).
PRICE_FIELDS = {
    "input_cost_per_token": "input_price_per_token",
    "output_cost_per_token": "output_price_per_token",
    "cache_read_input_token_cost": "cached_input_price_per_token",
    "output_cost_per_reasoning_token": "reasoning_price_per_token",
}
LIMIT_FIELDS = {"max_input_tokens": "context_window", "max_output_tokens": "max_output_tokens"}
CHAT_MODES = ("chat", "responses", None)
EMBEDDING_MODES = ("embedding",)


def catalog_modes(profile) -> tuple:
    """Return the catalog `mode`s that may describe `profile`: an embedding profile matches
    `mode: embedding` entries only, a chat profile chat ones (one upstream id may name both)."""
    return EMBEDDING_MODES if getattr(profile, "is_embedding", False) else CHAT_MODES


def catalog_load(path: str | Path) -> dict[str, dict]:
    """Return the catalog's model entries (the `sample_spec` documentation entry dropped)."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError("A price catalog is a JSON object of model id → entry.")
    return {k: v for k, v in data.items() if k != "sample_spec" and isinstance(v, dict)}


def catalog_entry_for(profile, catalog: dict[str, dict]) -> tuple[str, dict] | None:
    """Return (key, entry) describing `profile`, or None when the catalog has no such model.

    `catalog_key` wins; else the upstream id, as is or prefixed with the provider, whose
    `litellm_provider` is one of the provider's `catalog_names` (routing/providers.py).
    """
    if profile.catalog_key:
        entry = catalog.get(profile.catalog_key)
        return (profile.catalog_key, entry) if entry else None
    spec = provider_spec(profile.provider)
    providers = spec.catalog_names if spec is not None else ()
    for key in (profile.upstream_model, f"{profile.provider}/{profile.upstream_model}"):
        entry = catalog.get(key)
        if entry and entry.get("mode") in catalog_modes(profile) and (
                not providers or entry.get("litellm_provider") in providers):
            return key, entry
    return None


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(Decimal("1e-15"))


def entry_changes(profile, entry: dict) -> dict[str, tuple]:
    """Return {field: (old, new)} for every price or limit the catalog entry changes."""
    changes: dict[str, tuple] = {}
    for source, target in PRICE_FIELDS.items():
        if source not in entry:
            continue  # absent from the catalog: keep ours (it may be set by hand)
        new = _decimal(entry[source])
        old = getattr(profile, target)
        old = None if old is None else Decimal(old).quantize(Decimal("1e-15"))
        if new is None and target in ("input_price_per_token", "output_price_per_token"):
            continue
        if new != old:
            changes[target] = (old, new)
    for source, target in LIMIT_FIELDS.items():
        value = entry.get(source)
        if isinstance(value, int) and value > 0 and value != getattr(profile, target):
            changes[target] = (getattr(profile, target), value)
    return changes
