"""The containers pages: my containers with quota and a create form, and one container's page
(services, open, logs per service, SSH command, edit, actions). Thin: forms shape input, the
services decide, errors become messages a user can act on."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.containers import ingress, selectors, services
from apps.containers.forms import ContainerCreateForm, ContainerEditForm, services_text
from apps.containers.layout import service_slots
from apps.containers.models import Container
from apps.containers.presentation import open_base, ssh_command, status_message
from apps.core.errors import ApplicationError, NotFound
from apps.core.htmx import partial_or_page, render_htmx
from apps.quotas.selectors import environments_for


def _visible(request: HttpRequest, pk: int) -> Container:
    try:
        return selectors.container_get(user=request.user, pk=pk)  # type: ignore[arg-type]
    except NotFound:
        raise Http404(_("No such container.")) from None


def _back(request: HttpRequest, pk: int) -> str:
    """Where an action on a container returns: the list it was sent from (`back=list`, with the
    admin's `all=1` view kept), else the container's page. Only these two: never a URL from the form."""
    back = request.POST.get("back", "")
    if back == "list":
        return reverse("containers:list")
    if back == "list-all":
        return reverse("containers:list") + "?all=1"
    return reverse("containers:detail", args=[pk])


def _apply_errors(form: Any, exc: ApplicationError) -> None:
    placed = False
    for field, problems in exc.fields.items():
        name = field.split("[")[0]
        if name in form.fields:
            for problem in problems:
                form.add_error(name, problem)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


@login_required
@partial_or_page()
def container_list_view(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    show_all = user.is_platform_admin and request.GET.get("all") == "1"
    groups = selectors.node_groups_for_containers(user=user)
    environments = environments_for(user=user)
    form = ContainerCreateForm(request.POST or None, groups=groups, environments=environments)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            container = services.container_create(actor=user, **data)
        except ApplicationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Container %(n)s created.") % {"n": container.name})
            return redirect(reverse("containers:detail", args=[container.pk]))
    rows = selectors.containers_visible_to(user)
    if not show_all:
        rows = rows.filter(owner=user)
    containers = [(c, status_message(c), open_base(c)) for c in rows.order_by("owner__username", "name")]
    if request.method == "GET" and getattr(request, "htmx", False):  # a live refresh: the table only
        context = {"containers": containers, "show_all": show_all}
        return render_htmx(request, "containers/partials/list_live.html", context)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "containers/container_list.html",
        {
            "containers": containers,
            "quota": selectors.quota_overview(user=user),
            "form": form,
            "show_all": show_all,
            "current": "containers",
        },
        status=status,
    )


ACTIONS = {
    "start": (services.container_start, _("Starting: waiting for a node.")),
    "stop": (services.container_stop, _("Stopping.")),
    "restart": (services.container_restart, _("Restarting.")),
    "keep": (services.container_keep, _("Kept: the idle clock starts again.")),
}


@login_required
@partial_or_page()
def container_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    user: Any = request.user
    container = _visible(request, pk)
    environments = environments_for(user=container.owner)
    custom = [
        {"name": s.name, "port": s.port, "protocol": s.protocol, "command": s.command} for s in container.services.all()
    ]
    initial = {
        "environment": container.environment.name if container.environment else None,
        "cpu": container.cpu,
        "memory_gib": container.memory_gib,
        "gpus": container.gpus,
        "ssh": container.ssh,
        "startup_script": container.startup_script,
        "services": services_text(custom),
    }
    form = ContainerEditForm(initial=initial, environments=environments)
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action in ACTIONS:
                service, done = ACTIONS[action]
                service(actor=user, container=container)
                messages.success(request, str(done))
                return redirect(_back(request, pk))
            if action == "delete":
                services.container_delete(actor=user, container=container)
                messages.success(request, _("Container %(n)s deleted.") % {"n": container.name})
                return redirect(reverse("containers:list"))
            if action == "restart_service":
                name = request.POST.get("service", "")
                services.container_restart_service(actor=user, container=container, service=name)
                messages.success(request, _("Restarting service %(s)s.") % {"s": name})
                return redirect(reverse("containers:detail", args=[pk]))
            if action == "edit":
                form = ContainerEditForm(request.POST, environments=environments)
                if form.is_valid():
                    try:
                        services.container_update(actor=user, container=container, **form.cleaned_data)
                    except ApplicationError as exc:
                        _apply_errors(form, exc)
                    else:
                        messages.success(request, _("Saved. The changes apply at the next (re)start."))
                        return redirect(reverse("containers:detail", args=[pk]))
                status = 400
            else:
                messages.error(request, _("Unknown action."))
                status = 400
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect(_back(request, pk))
    container = _visible(request, pk)
    spec = (
        container.started_spec
        if container.run
        else {"ssh": container.ssh, "startup_script": container.startup_script, "services": custom}
    )
    states = container.service_states or {}
    base = open_base(container)
    slots = [
        {
            "slot": slot,
            "state": (states.get(slot.name) or {}).get("phase", ""),
            "message": (states.get(slot.name) or {}).get("message", ""),
            "url": (base + ("lab" if slot.name == "jupyter" else f"{slot.name}/")) if slot.protocol == "http" else "",
        }
        for slot in service_slots(spec or {})
    ]
    log_service = request.GET.get("service") or "jupyter"
    if log_service not in {s["slot"].name for s in slots}:
        log_service = "jupyter"
    context = {
        "c": container,
        "message": status_message(container),
        "slots": slots,
        "open_url": base + "lab",
        "ssh_command": ssh_command(container),
        "log_service": log_service,
    }
    if request.method == "GET" and getattr(request, "htmx", False):  # a live refresh: status and services only
        return render_htmx(request, "containers/partials/detail_live.html", context)
    return render(
        request,
        "containers/container_detail.html",
        {**context, "form": form, "current": "containers"},
        status=status,
    )


# -- the containers' Ingress (apps.containers.ingress) ------------------------------------------------


@never_cache
@require_GET
def container_ingress_auth_view(request: HttpRequest) -> HttpResponse:
    """ingress-nginx's ``auth-url``: 200 with the run's token in ``Authorization`` (for nginx to
    hand to the upstream), 401 without a valid ticket, 403 for anyone else or a container not
    running."""
    status, token = ingress.authorize(
        ticket=request.COOKIES.get(ingress.TICKET_COOKIE), original_url=request.headers.get("X-Original-URL", "")
    )
    response = HttpResponse(status=status)
    if token:
        response["Authorization"] = f"token {token}"
    return response


@never_cache
@login_required
def container_ingress_ticket_view(request: HttpRequest) -> HttpResponse:
    """ingress-nginx's ``auth-signin`` (on the portal's host): send the signed-in owner or admin
    to the containers host with a one-minute hand-off."""
    try:
        url = ingress.signin_redirect(user=request.user, rd=request.GET.get("rd", ""))
    except ingress.IngressRefused:
        raise Http404(_("No such container.")) from None
    return HttpResponseRedirect(url)


@never_cache
@require_GET
def container_ingress_enter_view(request: HttpRequest) -> HttpResponse:
    """The hand-off on the containers host: set the container's ticket cookie there and go on."""
    host = ingress.ingress_host()
    if not host or request.get_host().rsplit(":", 1)[0] != host:
        raise Http404(_("No such container."))
    try:
        ticket = ingress.enter(handoff=request.GET.get("t", ""))
    except ingress.IngressRefused:
        return HttpResponse(
            _("This sign-in link is invalid or has expired; open the container again from the portal."),
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    response = HttpResponseRedirect(ticket.next)
    response.set_cookie(
        ingress.TICKET_COOKIE,
        ticket.value,
        max_age=ingress.TICKET_MAX_AGE,
        path=ticket.path,
        secure=request.is_secure() or settings.ROTA_PUBLIC_URL.startswith("https:"),
        httponly=True,
        samesite="Lax",
    )
    response["Referrer-Policy"] = "no-referrer"  # the hand-off is in this page's address
    return response
