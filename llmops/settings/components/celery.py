"""Celery: a broker from CELERY_BROKER_URL, or tasks run eagerly in-process when it is unset."""

from llmops.settings.env import env

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
# No broker configured: run every task inline so the embedded default needs no extra process.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# A broker that is down must not hang a request that enqueues work: fail fast, caller degrades.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}

# Every periodic job, in one place (STYLE: beat schedules are declared in one module).
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # budgets: release reservations of requests that died without settling.
    "budgets-release-stale-reservations": {
        "task": "budgets.tasks.reservations_release_stale",
        "schedule": env.float("BUDGET_SWEEP_INTERVAL_SECONDS", default=60.0),
    },
    # budgets: alerts that could not be queued or delivered (broker or webhook down) go again.
    "budgets-alerts-redeliver": {
        "task": "budgets.tasks.alerts_redeliver",
        "schedule": env.float("BUDGET_ALERT_REDELIVER_INTERVAL_SECONDS", default=300.0),
    },
    # budgets: archive and delete raw ledger rows older than LEDGER_RETENTION_DAYS (a no-op
    # when it is unset, the default).
    "budgets-ledger-retention": {
        "task": "budgets.tasks.ledger_retention_apply",
        "schedule": env.float("LEDGER_RETENTION_INTERVAL_SECONDS", default=86400.0),
    },
    # budgets: fold the UTC days that are over into the per-key and per-model roll-ups that
    # reports read (catches up on every day missed; until then readers use the day rows).
    "budgets-rollups-fold": {
        "task": "budgets.tasks.rollups_fold",
        "schedule": env.float("ROLLUP_FOLD_INTERVAL_SECONDS", default=900.0),
    },
    # budgets: keep the ledger's monthly partitions created ahead (PostgreSQL; idempotent, a
    # no-op on SQLite).
    "budgets-ledger-partitions": {
        "task": "budgets.tasks.ledger_partitions_ensure",
        "schedule": env.float("LEDGER_PARTITIONS_INTERVAL_SECONDS", default=21600.0),
    },
    # observability: recompute llm_budget_utilization_ratio (published by /metrics).
    "observability-budget-utilization-refresh": {
        "task": "llmops.observability.budget_utilization_refresh",
        "schedule": env.float("BUDGET_UTILIZATION_REFRESH_SECONDS", default=60.0),
    },
    # routing: observed latency (p50/p95, TTFT) and error rate per profile, from the ledger.
    "routing-refresh-observed": {
        "task": "routing.tasks.profiles_refresh_observed",
        "schedule": env.float("ROUTING_OBSERVED_REFRESH_SECONDS", default=300.0),
    },
    # semcache: drop expired entries from namespace sets and every process's index.
    "semcache-expire": {
        "task": "semcache.expire",
        "schedule": env.float("SEMCACHE_EXPIRE_INTERVAL_SECONDS", default=60.0),
    },
    # responses: delete stored responses past RESPONSES_STORE_TTL_DAYS.
    "responses-purge-expired": {
        "task": "llmops.responses.purge_expired",
        "schedule": env.float("RESPONSES_PURGE_INTERVAL_SECONDS", default=3600.0),
    },
}
