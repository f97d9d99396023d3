from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        # Daphne writes its access log straight to a stream, past every logging filter; make it
        # scrub tokens before the server starts (daphne loads the application first).
        from apps.core.logging import install_server_log_scrubbing

        install_server_log_scrubbing()
