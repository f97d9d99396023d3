"""Top-level URLs: portal pages, the REST API under /api/v1/, its schema and docs, Django admin,
HAI's API (``apps/hai``)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from discussion import views as discussion_views

urlpatterns = [
    path("api/v1/", include("portal.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script at ?script (no inline script: CSP-friendly).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("django-admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("discuss/", include("discussion.urls")),
    path("media/discussion/<path:path>", discussion_views.image_view, name="forum-image"),
    path("notifications/", include("apps.notifications.urls")),
    # HAI Platform's API (its own paths at the root) so HAI's hai-cli works unchanged
    path("", include("apps.hai.urls")),
    path("", include("apps.web.urls")),
]
