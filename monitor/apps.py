from django.apps import AppConfig


class MonitorConfig(AppConfig):
    """``/monitor``: the admin pages (users, quotas, nodes, jobs, scheduler, usage, audit log)."""

    name = "monitor"
    label = "monitor"
