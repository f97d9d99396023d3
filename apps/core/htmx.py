"""What the portal's pages need from htmx on the server, on top of django-htmx.

``django_htmx.middleware.HtmxMiddleware`` gives every request ``request.htmx`` (truthy for a
request htmx sent, with ``.target``, ``.trigger`` …); django-htmx's ``trigger_client_event`` sets
``HX-Trigger``. This module adds the two things Rota does the same way on every page:

- ``render_htmx``: a partial followed by the pending messages as out-of-band toasts;
- ``partial_or_page``: the decorator for a view whose one URL answers htmx with a partial and a
  plain request with the whole page. Such a response must say ``Vary: HX-Request`` (and
  ``HX-Target`` when the partial depends on it), or a cache — the browser's own back/forward cache
  included — could hand the partial to a plain request, or the page to htmx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

View = TypeVar("View", bound=Callable[..., HttpResponse])


class HtmxRequest(HttpRequest):
    """A request that went through ``HtmxMiddleware``."""

    htmx: HtmxDetails


def render_htmx(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    """A partial, followed by the pending messages as out-of-band toasts."""
    body = render_to_string(template, context, request=request)
    body += render_to_string("web/partials/toasts_oob.html", {}, request=request)
    return HttpResponse(body, status=status)


def partial_or_page(*headers: str) -> Callable[[View], View]:
    """Mark a view whose response depends on ``HX-Request`` (and on ``headers`` besides)."""
    decorator: Callable[[View], View] = vary_on_headers("HX-Request", *headers)
    return decorator
