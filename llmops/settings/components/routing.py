"""Settings for the routing integration: policy levers, resilience, token estimation."""

from pathlib import Path

from llmops.settings.env import env

# --- Policy -----------------------------------------------------------------------------------
# Required predicted quality (chance of a good answer) for `model: "auto"`, by API key tier.
ROUTING_TIER_MIN_QUALITY = {
    "free": env.float("ROUTING_MIN_QUALITY_FREE", default=0.60),
    "standard": env.float("ROUTING_MIN_QUALITY_STANDARD", default=0.72),
    "premium": env.float("ROUTING_MIN_QUALITY_PREMIUM", default=0.80),
}
# The seed's levers, kept as configuration: a caller may send `metadata.complexity` (or the
# `x-llmops-complexity` header) and the level maps to a required quality; the learned predictor
# still decides which model meets it.
ROUTING_COMPLEXITY_MIN_QUALITY = {
    "simple": env.float("ROUTING_MIN_QUALITY_SIMPLE", default=0.55),
    "moderate": env.float("ROUTING_MIN_QUALITY_MODERATE", default=0.70),
    "complex": env.float("ROUTING_MIN_QUALITY_COMPLEX", default=0.80),
}
# Escalation margin for auto routing: a candidate below the quality bar still serves when no
# dearer candidate is predicted better (chance of a good answer) by more than this. It ranks
# prompts by the predicted gain of the dearer model, the score `manage.py eval_router` measures
# (docs/routing.md: the default was chosen there). Negative: off (the bar alone decides).
_ESCALATION_MARGIN = env.float("ROUTING_ESCALATION_MARGIN", default=0.05)
ROUTING_ESCALATION_MARGIN = _ESCALATION_MARGIN if _ESCALATION_MARGIN >= 0 else None
# Default latency requirement for auto routing (ms, 0: none); hints may tighten it per request.
ROUTING_MAX_LATENCY_MS = env.int("ROUTING_MAX_LATENCY_MS", default=0)
# Remaining budget below this many USD counts as "low": auto routing lowers the quality bar by
# ROUTING_BUDGET_QUALITY_DISCOUNT and says `auto:budget`.
ROUTING_BUDGET_LOW_USD = env.float("ROUTING_BUDGET_LOW_USD", default=1.0)
# ...or below this many worst-case calls of the model it would otherwise choose.
ROUTING_BUDGET_LOW_CALLS = env.int("ROUTING_BUDGET_LOW_CALLS", default=20)
ROUTING_BUDGET_QUALITY_DISCOUNT = env.float("ROUTING_BUDGET_QUALITY_DISCOUNT", default=0.15)
# Fallbacks appended after a profile's own list for auto routing (cheapest qualifying first).
ROUTING_MAX_FALLBACKS = env.int("ROUTING_MAX_FALLBACKS", default=2)

# The learned predictor's fitted constants (neighbourhood sizes, layers, temperature, label
# counts) live beside it in routing/learned.py, routing/predictor.py and routing/selectors.py.

# --- What routing asks of other rooms (routing/wiring.py) -------------------------------------
# Named here so routing imports neither the providers nor budgets: whether a profile's provider
# holds its key, and the caller's remaining budget.
ROUTING_PROFILE_AVAILABLE = "llmops.providers.registry.profile_available"
ROUTING_BUDGET_REMAINING = "budgets.selectors.budget_remaining"

# --- Resilience -------------------------------------------------------------------------------
ROUTING_MAX_RETRIES = env.int("ROUTING_MAX_RETRIES", default=2)
ROUTING_BACKOFF_BASE_SECONDS = env.float("ROUTING_BACKOFF_BASE_SECONDS", default=0.25)
ROUTING_BACKOFF_MAX_SECONDS = env.float("ROUTING_BACKOFF_MAX_SECONDS", default=8.0)
# Failures within ROUTING_FAILURE_WINDOW_SECONDS that open the circuit for a profile.
ROUTING_COOLDOWN_FAILURES = env.int("ROUTING_COOLDOWN_FAILURES", default=3)
ROUTING_COOLDOWN_SECONDS = env.float("ROUTING_COOLDOWN_SECONDS", default=30.0)
ROUTING_FAILURE_WINDOW_SECONDS = env.float("ROUTING_FAILURE_WINDOW_SECONDS", default=60.0)
# Redis for cooldown state shared by every process (empty: REDIS_URL; both empty: per process).
ROUTING_REDIS_URL = env("ROUTING_REDIS_URL", default="")
ROUTING_REDIS_PREFIX = env("ROUTING_REDIS_PREFIX", default="llmops:routing")

# --- Token estimation -------------------------------------------------------------------------
# Safety margin on top of the offline tokenizer's count (other vendors' tokenizers count more
# than cl100k); the byte bound stays the ceiling, so the estimate never under-counts.
ROUTING_TOKEN_MARGIN = env.float("ROUTING_TOKEN_MARGIN", default=0.5)
ROUTING_TOKEN_MARGIN_OPENAI = env.float("ROUTING_TOKEN_MARGIN_OPENAI", default=0.1)

# --- Observed latency -------------------------------------------------------------------------
# Ledger window and sample cap used by `refresh_observed` to compute p50/p95/TTFT/error rate.
ROUTING_OBSERVED_WINDOW_HOURS = env.int("ROUTING_OBSERVED_WINDOW_HOURS", default=24)
ROUTING_OBSERVED_MAX_SAMPLES = env.int("ROUTING_OBSERVED_MAX_SAMPLES", default=2000)

# --- The default predictor that ships with the project (routing/default_predictor.py) --------
# Outcome rows ({prompt, weak_correct, strong_correct}) fitted per tier (weak: efficient, strong:
# premium) as the prompt-specific prior of every profile in those tiers, until the deployment's
# own examples replace it. Default: the project's own routing/default_examples.jsonl; empty: off
# (profiles without labels route on their static quality scores).
ROUTING_DEFAULT_EXAMPLES = env(
    "ROUTING_DEFAULT_EXAMPLES",
    default=str(Path(__file__).resolve().parents[3] / "routing" / "default_examples.jsonl"))
