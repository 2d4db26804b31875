"""The default model profiles `load_default_models` installs.

Prices are USD per token, as published by each provider and checked against the public
`model_prices_and_context_window.json` catalog (gpt-4o-mini 0.15/0.60 per million, gpt-4.1-mini
0.40/1.60, gpt-4o 2.50/10, gemini-2.5-flash 0.30/2.50, claude-haiku-4-5 1/5, claude-sonnet-4-5
3/15). `sync_prices` keeps them current. Quality scores are priors in [0, 1], used until learned
predictions (RoutingExample rows) exist.
"""

from decimal import Decimal

D = Decimal


def _capable(**overrides) -> dict:
    return {"supports_streaming": True, "supports_tools": True, "supports_json_mode": True,
            "supports_vision": True, **overrides}


DEFAULT_PROFILES: list[dict] = [
    {"name": "gpt-4o-mini", "provider": "openai", "upstream_model": "gpt-4o-mini",
     "tier": "efficient", "input_price_per_token": D("0.00000015"),
     "output_price_per_token": D("0.0000006"), "cached_input_price_per_token": D("0.000000075"),
     "context_window": 128000, "max_output_tokens": 16384, "quality_score": 0.68,
     "typical_latency_ms": 700, "fallbacks": ["gpt-4.1-mini"], **_capable()},
    {"name": "gpt-4.1-mini", "provider": "openai", "upstream_model": "gpt-4.1-mini",
     "tier": "standard", "input_price_per_token": D("0.0000004"),
     "output_price_per_token": D("0.0000016"), "cached_input_price_per_token": D("0.0000001"),
     "context_window": 1047576, "max_output_tokens": 32768, "quality_score": 0.76,
     "typical_latency_ms": 900, "fallbacks": ["gpt-4o-mini"], **_capable()},
    {"name": "gpt-4o", "provider": "openai", "upstream_model": "gpt-4o", "tier": "premium",
     "input_price_per_token": D("0.0000025"), "output_price_per_token": D("0.00001"),
     "cached_input_price_per_token": D("0.00000125"), "context_window": 128000,
     "max_output_tokens": 16384, "quality_score": 0.84, "typical_latency_ms": 1200,
     "fallbacks": ["gpt-4.1-mini"], **_capable()},
    {"name": "gemini-2.5-flash", "provider": "gemini", "upstream_model": "gemini-2.5-flash",
     "catalog_key": "gemini/gemini-2.5-flash", "tier": "standard",
     "input_price_per_token": D("0.0000003"), "output_price_per_token": D("0.0000025"),
     "cached_input_price_per_token": D("0.00000003"),
     "reasoning_price_per_token": D("0.0000025"), "context_window": 1048576,
     "max_output_tokens": 65536, "quality_score": 0.80, "typical_latency_ms": 1000,
     "fallbacks": ["gpt-4.1-mini"], **_capable()},
    {"name": "claude-haiku-4-5", "provider": "anthropic", "upstream_model": "claude-haiku-4-5",
     "tier": "standard", "input_price_per_token": D("0.000001"),
     "output_price_per_token": D("0.000005"), "cached_input_price_per_token": D("0.0000001"),
     "context_window": 200000, "max_output_tokens": 64000, "quality_score": 0.80,
     "typical_latency_ms": 900, "fallbacks": ["gpt-4.1-mini"], **_capable()},
    {"name": "claude-sonnet-4-5", "provider": "anthropic", "upstream_model": "claude-sonnet-4-5",
     "tier": "premium", "input_price_per_token": D("0.000003"),
     "output_price_per_token": D("0.000015"), "cached_input_price_per_token": D("0.0000003"),
     "context_window": 200000, "max_output_tokens": 64000, "quality_score": 0.88,
     "typical_latency_ms": 1500, "fallbacks": ["gpt-4o"], **_capable()},
]

_SIMULATED_NOTE = ("Simulated model (no real LLM): deterministic '[simulated]' answers with real "
                   "token counts, priced like {mirror}. For demos and benchmarks.")

SIMULATED_PROFILES: list[dict] = [
    {"name": "simulated-efficient", "tier": "efficient", "mirror": "gpt-4o-mini",
     "quality_score": 0.68, "latency_ms": 150, "chunk_interval_ms": 10,
     "fallbacks": ["simulated-standard"]},
    {"name": "simulated-standard", "tier": "standard", "mirror": "gpt-4.1-mini",
     "quality_score": 0.76, "latency_ms": 300, "chunk_interval_ms": 15,
     "fallbacks": ["simulated-efficient"]},
    {"name": "simulated-premium", "tier": "premium", "mirror": "gpt-4o",
     "quality_score": 0.84, "latency_ms": 600, "chunk_interval_ms": 25,
     "fallbacks": ["simulated-standard"]},
]


def simulated_profile(spec: dict) -> dict:
    """Return the profile fields of one simulated profile (prices copied from its mirror)."""
    mirror = next(p for p in DEFAULT_PROFILES if p["name"] == spec["mirror"])
    prices = {k: mirror[k] for k in ("input_price_per_token", "output_price_per_token",
                                     "cached_input_price_per_token", "context_window",
                                     "max_output_tokens")}
    return {
        "name": spec["name"], "provider": "simulated", "upstream_model": spec["name"],
        "catalog_key": spec["mirror"], "tier": spec["tier"], **prices,
        "quality_score": spec["quality_score"],
        "typical_latency_ms": spec["latency_ms"] + 24 * spec["chunk_interval_ms"],
        "fallbacks": spec["fallbacks"], **_capable(supports_tools=False, supports_vision=False,
                                                  supports_json_mode=False),
        "options": {"latency_ms": spec["latency_ms"],
                    "chunk_interval_ms": spec["chunk_interval_ms"],
                    "description": _SIMULATED_NOTE.format(mirror=spec["mirror"])},
    }


# Embedding models (`mode: embedding`): priced per input token, served by /v1/embeddings only.
# OpenAI text-embedding-3-small 0.02 and -large 0.13 per million input tokens (8,191 tokens an
# input). `llmops-minilm` is the gateway's own all-MiniLM-L6-v2 (the semantic cache's embedder,
# 384 dimensions): free, no key, in process; it reads the first 256 word pieces of an input.
LOCAL_EMBEDDING_MODEL = "llmops-minilm"


def _embedding(**fields) -> dict:
    return {"mode": "embedding", "tier": "efficient", "output_price_per_token": D(0),
            "max_output_tokens": 0, "quality_score": 0.5, "supports_streaming": False,
            "supports_tools": False, "supports_json_mode": False, "supports_vision": False,
            **fields}


EMBEDDING_PROFILES: list[dict] = [
    _embedding(name="text-embedding-3-small", provider="openai",
               upstream_model="text-embedding-3-small", input_price_per_token=D("0.00000002"),
               context_window=8191, typical_latency_ms=300),
    _embedding(name="text-embedding-3-large", provider="openai",
               upstream_model="text-embedding-3-large", input_price_per_token=D("0.00000013"),
               context_window=8191, typical_latency_ms=400),
    _embedding(name=LOCAL_EMBEDDING_MODEL, provider="local", upstream_model="all-MiniLM-L6-v2",
               input_price_per_token=D(0), context_window=8191, typical_latency_ms=20,
               options={"dimensions": 384,
                        "description": "The gateway's own all-MiniLM-L6-v2 (384 dimensions, "
                                       "no key, free); reads the first 256 word pieces."}),
]


def all_default_profiles() -> list[dict]:
    """Return every default profile's fields: real chat models, simulated ones, embeddings."""
    return ([dict(p) for p in DEFAULT_PROFILES] + [simulated_profile(s) for s in SIMULATED_PROFILES]
            + [dict(p) for p in EMBEDDING_PROFILES])
