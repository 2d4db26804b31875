"""Test overrides: fast hashing, eager tasks, a file-backed SQLite test database."""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from llmops.settings.base import *  # noqa: E402,F403
from llmops.settings.base import BASE_DIR, DATABASES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
# Routing tests label their own synthetic vectors and assert on static priors; the shipped
# default predictor (fitted with the real embedder) is switched on by the tests that measure it.
ROUTING_DEFAULT_EXAMPLES = ""

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not ":memory:", so the gateway's DB threads and live servers share one database.
    # One file per test process, so concurrent runs on one machine never share a database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")}
