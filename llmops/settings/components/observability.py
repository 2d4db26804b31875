"""Settings for observability: /metrics access, budget gauges, quality feedback, the judge."""

from llmops.settings.env import env

# --- /metrics ---------------------------------------------------------------------------------
# Empty: open. Set: Prometheus must send `Authorization: Bearer <token>` (its `authorization`
# scrape option). Compared in constant time.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# Comma-separated IPs or CIDR networks allowed to scrape (checked against REMOTE_ADDR; behind a
# proxy, list the proxy and protect the path there). Default: loopback and private networks, so
# /metrics is never public by accident; "*" allows any address (then set METRICS_TOKEN).
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[
    "127.0.0.0/8", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
])

# --- Budget utilization gauge -----------------------------------------------------------------
# How often the beat task recomputes llm_budget_utilization_ratio (seconds). /metrics serves the
# last snapshot; a snapshot older than twice this is recomputed by the scrape itself, so the gauge
# stays right when no beat runs (the embedded single-process default).
BUDGET_UTILIZATION_REFRESH_SECONDS = env.int("BUDGET_UTILIZATION_REFRESH_SECONDS", default=60)
# How many of the budgets closest to their limit get their own (rank-labelled) series.
BUDGET_UTILIZATION_TOP_N = env.int("BUDGET_UTILIZATION_TOP_N", default=10)

# --- Refused requests ---------------------------------------------------------------------------
# Rate-limit refusals are counted per key and UTC day in each process and written to the database
# at most this often (seconds) per process; 0 writes each one at once. A process that stops loses
# at most this long of its counts (never the log lines or the metric).
RATE_LIMIT_REFUSALS_FLUSH_SECONDS = env.float("RATE_LIMIT_REFUSALS_FLUSH_SECONDS", default=1.0)

# --- Quality signals --------------------------------------------------------------------------
# The bounded values of the `task_type` label; anything else is recorded as "general".
QUALITY_TASK_TYPES = env.list(
    "QUALITY_TASK_TYPES",
    default=["general", "code", "math", "summarization", "extraction", "translation", "creative"],
)
# Scores (0-10) at or above this count as "the answer was right", at or below the low one as
# "wrong"; the verdict is passed on to the semantic cache's feedback.
QUALITY_GOOD_SCORE = env.float("QUALITY_GOOD_SCORE", default=7.0)
QUALITY_BAD_SCORE = env.float("QUALITY_BAD_SCORE", default=3.0)

# The sampled LLM judge: a ModelProfile name (empty: off) and the share of answers it scores.
QUALITY_JUDGE_MODEL = env("QUALITY_JUDGE_MODEL", default="")
QUALITY_JUDGE_SAMPLE_RATE = env.float("QUALITY_JUDGE_SAMPLE_RATE", default=0.0)
QUALITY_JUDGE_MAX_TOKENS = env.int("QUALITY_JUDGE_MAX_TOKENS", default=300)

# --- Built-in dashboard -----------------------------------------------------------------------
DASHBOARD_DEFAULT_DAYS = env.int("DASHBOARD_DEFAULT_DAYS", default=30)
DASHBOARD_TOP_N = env.int("DASHBOARD_TOP_N", default=10)

# The observability tasks live outside an app's `tasks` module (llmops.observability is a package
# of the llmops app), so the worker imports them explicitly.
CELERY_IMPORTS = ("llmops.observability.tasks",)
