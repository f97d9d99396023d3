"""Notification pages: the list grouped by day, mark read, which kinds to get, the badge count."""

from __future__ import annotations

from itertools import groupby

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.notifications import presentation, selectors, services
from apps.notifications.choices import NotificationKind

PAGE_SIZE = 30


class SignedInRequest(HttpRequest):
    user: User


@login_required
@require_GET
def notification_list_view(request: SignedInRequest) -> HttpResponse:
    unread_only = request.GET.get("unread") == "1"
    kind = request.GET.get("kind", "")
    rows = selectors.notifications_of(user=request.user, unread_only=unread_only, kind=kind)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    items = [(n, presentation.describe(n)) for n in page.object_list]
    days = [
        (day, list(group))
        for day, group in groupby(items, key=lambda item: timezone.localtime(item[0].updated_at).date())
    ]
    context = {
        "page": page,
        "days": days,
        "unread_only": unread_only,
        "kind": kind,
        "kinds": NotificationKind.choices,
    }
    return render(request, "notifications/notification_list.html", context)


@login_required
@require_POST
def notification_read_view(request: SignedInRequest) -> HttpResponse:
    raw = request.POST.get("id", "")
    ids = [int(raw)] if raw.isdigit() else None
    services.notifications_mark_read(user=request.user, ids=ids)
    target = request.POST.get("next", "")
    if ids is not None and target.startswith("/") and not target.startswith("//"):
        return redirect(target)  # opening one notification: go where it points
    return redirect("notifications:list")


@never_cache
@login_required
@require_GET
def unread_count_view(request: SignedInRequest) -> JsonResponse:
    """The badge's number (re-fetched by notifications.js when the socket (re)opens)."""
    return JsonResponse({"unread": services.unread_count(user_id=request.user.pk)})


@login_required
@require_http_methods(["GET", "POST"])
def preferences_view(request: SignedInRequest) -> HttpResponse:
    if request.method == "POST":
        services.preferences_set(user=request.user, enabled=request.POST.getlist("kinds"))
        messages.success(request, _("Saved. You get only the kinds that are ticked."))
        return redirect("notifications:preferences")
    context = {"kinds": NotificationKind.choices, "enabled": selectors.enabled_kinds(user=request.user)}
    return render(request, "notifications/preferences.html", context)
