from django.apps import AppConfig


class WebConfig(AppConfig):
    """The portal's pages: server-rendered templates, HTMX partials, the realtime glue."""

    name = "apps.web"
    label = "web"
