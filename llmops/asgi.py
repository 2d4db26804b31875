"""ASGI entry point: the production server (uvicorn) runs this application."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application() does first

# Both need settings loaded.
from llmops.async_middleware import GatewayASGIHandler  # noqa: E402
from llmops.body_limit import BodySizeLimitMiddleware  # noqa: E402

application = BodySizeLimitMiddleware(GatewayASGIHandler())


# The interpreter's GIL switch interval in each server worker (Python's default is 5 ms). A
# database thread whose reply arrived waits up to this long for the GIL while the event loop
# runs; shorter keeps those waits (and the budget-counter locks held across them) short:
# +15% req/s at concurrency 64 with a 100 ms upstream (docs/performance.md).
GIL_SWITCH_INTERVAL_SECONDS = 0.0005


def _gil_switch_interval() -> None:
    import sys

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)


_gil_switch_interval()


def _warm_up() -> None:
    # Load the embedding model now, once per worker process, instead of on the first request.
    from django.conf import settings

    if getattr(settings, "ENABLE_SEMANTIC_CACHE", False):
        from semcache.gateway import warm_up

        warm_up()


_warm_up()
