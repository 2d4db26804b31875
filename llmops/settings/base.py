"""Settings for every environment: read from the environment (and `.env`), safe embedded defaults.

There is no production-only module: the environment decides. Each integration (budgets, semantic
cache, routing, observability, celery) keeps its own settings in `llmops/settings/components/`,
imported at the end of this module, with an on/off switch where it makes sense.
"""

from django.core.exceptions import ImproperlyConfigured

from llmops.settings.env import BASE_DIR, env

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see .env.example).")
    SECRET_KEY = "insecure-development-only-key"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "llmops",
    "routing",
    "budgets",
    "semcache",
    "llmops.responses",
]

# Under ASGI (llmops/asgi.py) Django's own middlewares here run as their hop-free subclasses in
# llmops/async_middleware.py (sessions, CSRF, auth and messages skipped on API_PATH_PREFIX).
MIDDLEWARE = [
    "llmops.observability.middleware.PrometheusBeforeMiddleware",
    "llmops.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "llmops.observability.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "llmops.urls"
# The API-key authenticated OpenAI-style API: no sessions, CSRF or flash messages there.
API_PATH_PREFIX = "/v1/"
ASGI_APPLICATION = "llmops.asgi.application"
WSGI_APPLICATION = "llmops.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# Embedded default: a SQLite file next to manage.py. PostgreSQL via DATABASE_URL in production.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock at
            # BEGIN so concurrent budget reservations queue instead of failing with "locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_TIMEOUT_SECONDS", default=30),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Threads that run ORM work for the async request path (see llmops/db.py). Each holds at most one
# database connection, so this also caps connections per gateway process.
GATEWAY_DB_THREADS = env.int("GATEWAY_DB_THREADS", default=16)

# --- Redis and Django's cache -----------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="llmops"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
                # Redis down must never take requests down with it (docs/architecture.md,
                # invariant 5).
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    DJANGO_REDIS_IGNORE_EXCEPTIONS = True
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth, passwords, i18n ------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the finders when collectstatic has not run (dev and `make run`).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security: strict unless DEBUG ----------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Request limits (documented in docs/reliability.md) -------------------------------------
# Largest request body accepted; bigger bodies get a 413 error object before parsing.
LLMOPS_MAX_BODY_BYTES = env.int("LLMOPS_MAX_BODY_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = LLMOPS_MAX_BODY_BYTES
LLMOPS_MAX_MESSAGES = env.int("LLMOPS_MAX_MESSAGES", default=2048)
LLMOPS_MAX_OUTPUT_TOKENS = env.int("LLMOPS_MAX_OUTPUT_TOKENS", default=131072)
# Output-token limit for requests that set no max_tokens (a team's `default_max_tokens` comes
# first; 0 = none: the model's max output). Admission reserves the worst case, so without it a
# short question on a 16k-output model reserves thousands of times its real cost.
LLMOPS_DEFAULT_MAX_TOKENS = env.int("LLMOPS_DEFAULT_MAX_TOKENS", default=0)
LLMOPS_MAX_JSON_DEPTH = env.int("LLMOPS_MAX_JSON_DEPTH", default=64)

# --- Savings (docs/savings.md) ----------------------------------------------------------------
# The model a team would call without llmops when it sends `auto` (or an alias): routing's
# savings are measured against it (a team's `reference_model` in admin comes first). Empty: no
# routing saving is claimed for such requests. A request naming a model is its own reference.
LLMOPS_REFERENCE_MODEL = env("LLMOPS_REFERENCE_MODEL", default="")
# Shadow mode: the cache and routing decide but do not act; requests are served as sent and the
# ledger records what they would have saved (a team's `shadow_mode` in admin comes first).
LLMOPS_SHADOW_MODE = env.bool("LLMOPS_SHADOW_MODE", default=False)

# --- Django REST framework ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["llmops.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["llmops.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": ["llmops.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env("API_KEY_RATE_LIMIT", default="6000/min")},
    "EXCEPTION_HANDLER": "llmops.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "llmops gateway API",
    "DESCRIPTION": "OpenAI-compatible LLM gateway with semantic caching, routing and budgets.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Providers ------------------------------------------------------------------------------
# The providers are one registry (routing/providers.py, docs/providers.md): each entry names its
# adapter, key setting, endpoint, tokenizer, catalog names and capabilities. Dotted paths to
# further `ProviderSpec` objects (one with a built-in name replaces it):
LLMOPS_EXTRA_PROVIDERS: list[str] = []
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
GEMINI_API_KEY = env("GEMINI_API_KEY", default="")
ANTHROPIC_API_KEY = env("ANTHROPIC_API_KEY", default="")
PROVIDER_CONNECT_TIMEOUT_SECONDS = env.float("PROVIDER_CONNECT_TIMEOUT_SECONDS", default=5.0)
# Time allowed for the first byte of the answer (non-streamed: the whole answer).
PROVIDER_READ_TIMEOUT_SECONDS = env.float("PROVIDER_READ_TIMEOUT_SECONDS", default=120.0)
# Longest silence allowed between two chunks of a stream before it counts as stalled.
PROVIDER_STREAM_IDLE_TIMEOUT_SECONDS = env.float("PROVIDER_STREAM_IDLE_TIMEOUT_SECONDS",
                                                 default=60.0)
PROVIDER_MAX_CONNECTIONS = env.int("PROVIDER_MAX_CONNECTIONS", default=1000)

# --- Logging: one JSON line per request (llmops.request) --------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "llmops.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# --- Integrations: each owns its module and switch ------------------------------------------
# isort: off
from llmops.settings.components.celery import *  # noqa: E402,F403
from llmops.settings.components.budgets import *  # noqa: E402,F403
from llmops.settings.components.semcache import *  # noqa: E402,F403
from llmops.settings.components.routing import *  # noqa: E402,F403
from llmops.settings.components.observability import *  # noqa: E402,F403
from llmops.settings.components.responses import *  # noqa: E402,F403
# isort: on
