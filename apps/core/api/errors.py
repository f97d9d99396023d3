"""Django's error pages for the API's paths: the one JSON error shape, never an HTML page.

Django answers some requests before any DRF view runs — a URL that matches no route (``/api/v1/
tokens/abc/`` where an id must be a number) or an exception outside a view. Under ``/api/`` these
answers use ``apps.core.api.exception_handler``'s shape too; everywhere else the portal's HTML pages.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from apps.core.api.exception_handler import error_body

API_PREFIX = "/api/"


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body("not_found", "No such API endpoint or object."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        message = "The server failed to answer this request; it has been logged. Try again later."
        return JsonResponse(error_body("server_error", message), status=500)
    return defaults.server_error(request)
