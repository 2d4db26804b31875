"""WSGI entry point (`manage.py runserver`, gunicorn): the API runs on each process's gateway loop
(llmops/api/bridge.py), streams included; `make serve` serves ASGI (llmops/asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")

application = get_wsgi_application()
