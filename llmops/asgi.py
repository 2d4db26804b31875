"""ASGI entry point: the production server (uvicorn) runs this application."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application() does first

# Both need settings loaded.
from llmops.async_middleware import GatewayASGIHandler  # noqa: E402
from llmops.body_limit import BodySizeLimitMiddleware  # noqa: E402

application = BodySizeLimitMiddleware(GatewayASGIHandler())


def _gil_switch_interval() -> None:
    import sys

    from django.conf import settings

    sys.setswitchinterval(settings.GIL_SWITCH_INTERVAL_MS / 1000)


_gil_switch_interval()


def _warm_up() -> None:
    # Load the embedding model now, once per worker process, instead of on the first request.
    from django.conf import settings

    if getattr(settings, "ENABLE_SEMANTIC_CACHE", False):
        from semcache.gateway import warm_up

        warm_up()


_warm_up()
