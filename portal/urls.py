"""Top-level URLs: portal pages, the REST API under /api/v1/, its schema and docs, Django admin,
HAI's API (``apps/hai``)."""

from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from apps.core.api.schema import CachedSchemaView
from discussion import views as discussion_views

# Swagger UI and Redoc are served from drf-spectacular-sidecar (our origin), so the site's policy
# holds on their pages too; Redoc only needs to start its search worker from a blob.
docs_csp = csp_update({"worker-src": ["'self'", "blob:"]})

urlpatterns = [
    path("api/v1/", include("portal.api_urls")),
    path("api/schema/", CachedSchemaView.as_view(), name="api-schema"),
    path("api/docs/", docs_csp(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
    path("api/redoc/", docs_csp(SpectacularRedocView.as_view(url_name="api-schema")), name="api-redoc"),
    path("django-admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("discuss/", include("discussion.urls")),
    path("media/discussion/<path:path>", discussion_views.image_view, name="forum-image"),
    path("notifications/", include("apps.notifications.urls")),
    path("monitor/", include("monitor.urls")),
    path("containers/", include("apps.containers.urls")),
    # HAI Platform's API (its own paths at the root) so HAI's hai-cli works unchanged
    path("", include("apps.hai.urls")),
    path("", include("apps.web.urls")),
]

# Under /api/ an unmatched URL or an uncaught error answers in the API's JSON error shape.
handler404 = "apps.core.api.errors.page_not_found"
handler500 = "apps.core.api.errors.server_error"
