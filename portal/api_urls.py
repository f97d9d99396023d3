"""REST API v1: each app contributes its ``api/urls.py``."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.accounts.api.urls")),
    path("", include("apps.cluster.api.urls")),
    path("", include("apps.quotas.api.urls")),
    path("", include("apps.core.api.urls")),
    path("", include("apps.experiments.api.urls")),
    path("", include("apps.logs.api.urls")),
    path("", include("apps.containers.api.urls")),
]
