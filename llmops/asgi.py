"""ASGI entry point: the production server (uvicorn) runs this application."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")

from llmops.body_limit import BodySizeLimitMiddleware  # noqa: E402  (needs settings loaded)

application = BodySizeLimitMiddleware(get_asgi_application())


def _warm_up() -> None:
    # Load the embedding model now, once per worker process, instead of on the first request.
    from django.conf import settings

    if getattr(settings, "ENABLE_SEMANTIC_CACHE", False):
        from semcache.gateway import warm_up

        warm_up()


_warm_up()
