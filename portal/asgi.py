"""ASGI entry point: HTTP through Django, websockets through Channels (see ``portal/routing.py``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from portal.routing import build_application  # noqa: E402  (needs Django set up first)

application = build_application(django_asgi_app)

from django.conf import settings  # noqa: E402

from apps.core.loops import start_background_loops  # noqa: E402

if settings.ROTA_TASK_RUNNER == "thread":
    # Embedded profile: the scheduler and launcher run inside the server process, so their
    # events reach websockets through the in-memory channel layer.
    start_background_loops()
