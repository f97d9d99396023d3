from django.apps import AppConfig

from apps.core.logging import install_server_log_scrubbing


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        # Daphne writes its access log straight to a stream, past every logging filter; make it
        # scrub tokens before the server starts (daphne loads the application first).
        install_server_log_scrubbing()
