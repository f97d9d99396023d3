"""ASGI entry point: HTTP through Django, websockets through Channels (see ``portal/routing.py``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from portal.routing import build_application  # noqa: E402  (needs Django set up first)

application = build_application(django_asgi_app)
