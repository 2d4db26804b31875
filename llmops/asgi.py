"""ASGI entry point: the production server (uvicorn) runs this application."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")

application = get_asgi_application()
