"""The admin pages at /monitor. Views are thin: check the admin power (``monitor.access``), read
through selectors, write through services, and turn an ``ApplicationError`` into a form error or
a message. Refused writes change nothing: the services check again, inside their transaction.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html_join
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts import services as account_services
from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.cluster import services as cluster_services
from apps.cluster.models import Node, NodeGroup
from apps.containers import services as container_services
from apps.core.errors import ApplicationError
from apps.core.htmx import HtmxRequest, partial_or_page, render_htmx
from apps.core.paging import IdFirstPaginator
from apps.core.priorities import Priority
from apps.experiments.choices import ChainStatus
from apps.experiments.filtersets import ChainFilterSet
from apps.experiments.models import Chain
from apps.quotas.choices import QuotaKind
from apps.scheduler.status import last_pass_summary
from apps.web import services as web_services
from apps.web.models import Notice
from monitor import selectors, services
from monitor.access import Power, has_power, monitor_view, powers_of
from monitor.forms import (
    ActivationForm,
    AuditFilterForm,
    ContainerPolicyForm,
    NodeActionForm,
    NoticeForm,
    UsagePeriodForm,
    UserCreateForm,
    UserEditForm,
    add_service_error,
)

PAGE_SIZE = 50


class AdminRequest(HtmxRequest):
    user: User


def _context(request: AdminRequest, section: str, **extra: Any) -> dict[str, Any]:
    return {"section": section, "can": powers_of(request.user), **extra}


@login_required
@require_GET
def home_view(request: AdminRequest) -> HttpResponse:
    """``/monitor``, the address people type: admins land on the first page, everyone else on
    their dashboard, told why (the admin pages themselves answer 404 to them)."""
    if has_power(request.user, Power.VIEW):
        return redirect("monitor:users")
    messages.info(request, _("The admin pages are for platform admins. The cluster's state is on your dashboard."))
    return redirect(reverse("web:dashboard") + "#cluster")


# --- users --------------------------------------------------------------------------------------


@monitor_view()
@require_GET
def users_view(request: AdminRequest) -> HttpResponse:
    """Every user, searchable and filterable, with what they run and wait for right now."""
    filters = selectors.UserFilters(
        q=request.GET.get("q", "").strip(),
        role=request.GET.get("role", "") if request.GET.get("role", "") in Role.values else "",
        group=request.GET.get("group", "").strip(),
        active=request.GET.get("active", ""),
        ordering=request.GET.get("sort", "username"),
    )
    paginator = Paginator(selectors.user_rows(filters=filters), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return render(
        request,
        "monitor/users.html",
        _context(
            request,
            "users",
            page=page,
            users=list(page.object_list),
            filters=filters,
            roles=Role.choices,
            groups=selectors.group_names(),
            totals=selectors.user_totals(),
            orderings=[
                ("username", _("User name")),
                ("-nodes", _("Most nodes in use")),
                ("-running", _("Most running jobs")),
                ("-waiting", _("Most waiting jobs")),
                ("-joined", _("Newest")),
            ],
        ),
    )


@monitor_view(Power.USERS)
@require_http_methods(["GET", "POST"])
def user_create_view(request: AdminRequest) -> HttpResponse:
    """Create a user; their first token is shown in this response only, to copy."""
    created = None
    status = 200
    if request.method == "POST":
        form = UserCreateForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                created = services.user_create_with_token(
                    actor=request.user,
                    username=data["username"],
                    role=data["role"],
                    nickname=data["nickname"],
                    email=data["email"],
                    team=data["team"] or None,
                    groups=data["groups"],
                    posix_uid=data["posix_uid"],
                    posix_gid=data["posix_gid"],
                    issue_token=data["issue_token"],
                )
            except ApplicationError as exc:
                add_service_error(form, exc)
                status = 400
            else:
                if created.token is None:
                    messages.success(request, _("User %(name)s created.") % {"name": created.user.username})
                    return redirect("monitor:user-detail", pk=created.user.pk)
        else:
            status = 400
    else:
        form = UserCreateForm()
    return render(
        request,
        "monitor/user_create.html",
        _context(request, "users", form=form, created=created, groups=selectors.group_names()),
        status=status,
    )


def _user_or_404(pk: int) -> User:
    user = selectors.user_get(pk=pk)
    if user is None:
        raise Http404(_("No such user."))
    return user


def _user_initial(person: User) -> dict[str, Any]:
    own_groups = sorted(g.name for g in person.groups.all() if person.team_id is None or g.pk != person.team_id)
    return {
        "nickname": person.nickname,
        "email": person.email,
        "role": person.role,
        "team": person.team.name if person.team else "",
        "groups": ", ".join(own_groups),
        "posix_uid": person.posix_uid,
        "posix_gid": person.posix_gid,
    }


def _user_page(request: AdminRequest, person: User, form: UserEditForm, status: int = 200) -> HttpResponse:
    return render(
        request,
        "monitor/user_detail.html",
        _context(
            request,
            "users",
            person=person,
            form=form,
            activation=ActivationForm(initial={"active": "0" if person.is_active else "1"}),
            counts=selectors.user_job_counts(user=person),
            groups=selectors.group_names(),
        ),
        status=status,
    )


@monitor_view()
@require_GET
def user_detail_view(request: AdminRequest, pk: int) -> HttpResponse:
    """One user: their jobs in numbers, the edit form (root) and activation (root)."""
    person = _user_or_404(pk)
    return _user_page(request, person, UserEditForm(initial=_user_initial(person)))


@monitor_view(Power.USERS)
@require_POST
def user_edit_view(request: AdminRequest, pk: int) -> HttpResponse:
    """Change role, team, groups, nickname, email and POSIX ids. One audit entry."""
    person = _user_or_404(pk)
    form = UserEditForm(request.POST, initial=_user_initial(person))
    if form.is_valid():
        try:
            account_services.user_update(actor=request.user, user=person, **form.changes())
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, _("Saved the changes to %(name)s.") % {"name": person.username})
            return redirect("monitor:user-detail", pk=person.pk)
    return _user_page(request, _user_or_404(pk), form, status=400)


@monitor_view(Power.USERS)
@require_POST
def user_activation_view(request: AdminRequest, pk: int) -> HttpResponse:
    person = _user_or_404(pk)
    form = ActivationForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose whether to activate or deactivate, and what happens to the jobs."))
        return redirect("monitor:user-detail", pk=person.pk)
    try:
        result = services.user_set_active(
            actor=request.user, user=person, active=form.cleaned_data["active"], jobs=form.cleaned_data["jobs"]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("monitor:user-detail", pk=person.pk)
    if not result.changed:
        messages.info(request, _("Nothing to change."))
    elif result.user.is_active:
        messages.success(request, _("%(name)s is active again.") % {"name": person.username})
    else:
        n = len(result.jobs)
        messages.success(
            request,
            ngettext(
                "%(name)s is deactivated; %(n)d job was handled as you chose.",
                "%(name)s is deactivated; %(n)d jobs were handled as you chose.",
                n,
            )
            % {"name": person.username, "n": n},
        )
    return redirect(reverse("monitor:user-detail", args=[person.pk]))


# --- quotas -------------------------------------------------------------------------------------


QUOTA_FIELD_PREFIXES = tuple(f"{kind}:" for kind in QuotaKind.values)


def _quota_subject(params: Any) -> User | Group | None:
    if params.get("user"):
        return User.objects.filter(username=params["user"].strip()).first()
    name = params.get("group", "").strip() or "public"
    return Group.objects.filter(name=name).first()


def _quota_page(
    request: AdminRequest,
    subject: User | Group | None,
    submitted: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "monitor/quotas.html",
        _context(
            request,
            "quotas",
            subject=subject,
            grid=selectors.quota_grid(subject=subject) if subject is not None else None,
            subjects=selectors.quota_subjects(),
            groups=selectors.group_names(),
            submitted=submitted or {},
            errors=errors or {},
            asked=request.GET.get("user") or request.GET.get("group") or request.POST.get("subject", ""),
        ),
        status=status,
    )


@monitor_view()
@require_GET
def quotas_view(request: AdminRequest) -> HttpResponse:
    """Quotas of one user or group: node groups × priority levels (use against quota for a user),
    dev container quotas, environments. Quota editors edit the cells in place."""
    subject = _quota_subject(request.GET)
    return _quota_page(request, subject, status=200 if subject is not None else 404)


@monitor_view(Power.QUOTAS)
@require_POST
def quotas_save_view(request: AdminRequest) -> HttpResponse:
    kind = request.POST.get("subject_type")
    name = request.POST.get("subject", "")
    subject = _quota_subject({"user": name} if kind == "user" else {"group": name})
    if subject is None:
        raise Http404(_("No such user or group."))
    values = {k: str(request.POST.get(k, "")) for k in request.POST if k.startswith(QUOTA_FIELD_PREFIXES)}
    try:
        changed = services.quota_grid_save(actor=request.user, subject=subject, values=values)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _quota_page(request, subject, submitted=values, errors=exc.fields, status=400)
    if changed:
        messages.success(
            request,
            ngettext(
                "%(n)d quota changed; it takes effect at the next scheduling pass.",
                "%(n)d quotas changed; they take effect at the next scheduling pass.",
                changed,
            )
            % {"n": changed},
        )
    else:
        messages.info(request, _("Nothing to change."))
    query = {"user": subject.username} if isinstance(subject, User) else {"group": subject.name}
    return redirect(f"{reverse('monitor:quotas')}?{urlencode(query)}")


# --- nodes --------------------------------------------------------------------------------------


@monitor_view()
@require_GET
@partial_or_page()
def nodes_view(request: AdminRequest) -> HttpResponse:
    """Node groups as a tree with counts; every node with its state, GPUs and the job on it."""
    state = request.GET.get("state", "")
    if state not in selectors.NODE_DISPLAY_STATES:
        state = ""
    q = request.GET.get("q", "").strip()
    context = _context(
        request,
        "nodes",
        tree=selectors.node_tree(state=state, q=q),
        state=state,
        q=q,
        states=NODE_STATE_LABELS,
        **_node_actions(),
    )
    if request.htmx:  # a live refresh (node.state, scheduler.pass): the tree only
        return render_htmx(request, "monitor/partials/nodes_live.html", context)
    return render(request, "monitor/nodes.html", context)


def _node_actions() -> dict[str, Any]:
    """What each node's action menu needs; the deadline options are rendered once per page, not
    once per node (the node tree draws a menu for each of hundreds of nodes)."""
    options = format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        ((value, " selected" if value == "60" else "", str(label)) for value, label in NodeActionForm.DEADLINES),
    )
    return {"action_form": NodeActionForm(), "deadline_options": options}


NODE_STATE_LABELS = [
    ("busy", gettext_lazy("Busy")),
    ("free", gettext_lazy("Free")),
    ("draining", gettext_lazy("Draining")),
    ("drained", gettext_lazy("Drained")),
    ("cordoned", gettext_lazy("Cordoned")),
    ("not_ready", gettext_lazy("Not ready")),
    ("disabled", gettext_lazy("Disabled")),
]


def _node_or_404(pk: int) -> Node:
    node = selectors.node_get(pk=pk)
    if node is None:
        raise Http404(_("No such node."))
    return node


@monitor_view()
@require_GET
def node_detail_view(request: AdminRequest, pk: int) -> HttpResponse:
    """One node: what it is, who runs on it, its recent jobs and the admins' changes to it."""
    node = _node_or_404(pk)
    holder = selectors.node_holder(node=node)
    return render(
        request,
        "monitor/node_detail.html",
        _context(
            request,
            "nodes",
            node=node,
            row=selectors.NodeRow(node=node, holder=holder),
            ranks=selectors.node_recent_ranks(node=node),
            events=selectors.node_events(node=node),
            **_node_actions(),
        ),
    )


@monitor_view(Power.NODES)
@require_POST
def node_action_view(request: AdminRequest, pk: int) -> HttpResponse:
    """Enable, disable or drain a node (cluster managers, ops, root). Audited by the service."""
    node = _node_or_404(pk)
    back = safe_back(request, reverse("monitor:node-detail", args=[node.pk]))
    form = NodeActionForm(request.POST)
    if not form.is_valid():
        errors = [str(e) for errs in form.errors.values() for e in errs]
        messages.error(request, " ".join(errors))
        return redirect(back)
    action = form.cleaned_data["action"]
    try:
        if action == "enable":
            cluster_services.node_enable(actor=request.user, node=node)
            messages.success(request, _("%(node)s takes new work again.") % {"node": node.name})
        elif action == "disable":
            cluster_services.node_disable(actor=request.user, node=node, reason=form.cleaned_data["reason"])
            messages.success(request, _("%(node)s is disabled; its jobs are requeued.") % {"node": node.name})
        else:
            node = cluster_services.node_drain(
                actor=request.user, node=node, reason=form.cleaned_data["reason"], deadline=form.cleaned_data["when"]
            )
            messages.success(
                request,
                _("%(node)s takes no new work; jobs still on it at %(when)s are suspended and requeued.")
                % {"node": node.name, "when": date_format(timezone.localtime(node.drain_deadline), "Y-m-d H:i")},
            )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(back)


def safe_back(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target.startswith("/monitor/") and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


# --- containers ---------------------------------------------------------------------------------


@monitor_view()
@require_GET
def container_policies_view(request: AdminRequest) -> HttpResponse:
    """How each node group hosts development containers; cluster managers and ops edit it (the
    container quotas themselves are on the quotas page)."""
    rows = selectors.container_policies()
    editable = has_power(request.user, Power.NODES)
    forms = {row.group.pk: ContainerPolicyForm.for_policy(row.policy, prefix=f"g{row.group.pk}") for row in rows}
    return render(
        request,
        "monitor/container_policies.html",
        _context(request, "containers", rows=[(row, forms[row.group.pk]) for row in rows], editable=editable),
    )


@monitor_view(Power.NODES)
@require_POST
def container_policy_save_view(request: AdminRequest, pk: int) -> HttpResponse:
    """Save one node group's container policy (the service checks the group again and audits)."""
    group = NodeGroup.objects.filter(pk=pk).first()
    if group is None:
        raise Http404(_("No such node group."))
    form = ContainerPolicyForm(request.POST, prefix=f"g{group.pk}")
    if not form.is_valid():
        errors = [f"{form.fields[name].label}: {e}" for name, errs in form.errors.items() for e in errs]
        messages.error(request, " ".join(errors))
        return redirect("monitor:container-policies")
    data = form.cleaned_data
    try:
        container_services.group_policy_set(
            actor=request.user,
            node_group=group,
            kind=data["kind"],
            preemptible=data["preemptible"],
            idle_reclaim=data["idle_reclaim"],
            idle_seconds=data["idle_minutes"] * 60,
            grace_seconds=data["grace_minutes"] * 60,
            gpu_util_threshold=data["gpu_util_threshold"],
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Container settings of %(group)s saved.") % {"group": group.name})
    return redirect("monitor:container-policies")


# --- jobs ---------------------------------------------------------------------------------------

MAX_BATCH = 200


@monitor_view()
@require_GET
def jobs_view(request: AdminRequest) -> HttpResponse:
    """Every job, with the portal's filters plus the owner; admin stop, suspend and resume, one
    by one or in a batch (ops, task admins, root)."""
    filterset = ChainFilterSet(request.GET, queryset=selectors.jobs_all())
    queryset = filterset.qs if filterset.is_valid() else selectors.jobs_all().none()
    # Keys first, then the page's rows: page 1,000 of 100,000 jobs costs what page 1 does.
    paginator = IdFirstPaginator(queryset, PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return render(
        request,
        "monitor/jobs.html",
        _context(
            request,
            "jobs",
            page=page,
            jobs=list(page.object_list),
            statuses=[("pending", _("Waiting")), ("active", _("Running")), ("finished", _("Finished"))]
            + [(s.value, s.label) for s in ChainStatus],
            node_groups=list(NodeGroup.objects.order_by("name").values_list("name", flat=True)),
            priorities=[p.label for p in Priority],
            filter_errors=filterset.errors,
        ),
    )


@monitor_view(Power.JOBS)
@require_POST
def jobs_batch_view(request: AdminRequest) -> HttpResponse:
    """Stop, suspend, resume, change the priority of or move the chosen jobs as an admin; each one
    is audited on its own, and one refused job does not undo the others."""
    action = request.POST.get("action", "")
    back = safe_back(request, reverse("monitor:jobs"))
    try:
        ids = sorted({int(v) for v in request.POST.getlist("ids")})
    except ValueError:
        ids = []
    if action not in (*services.JOB_ACTIONS, "priority", "move") or not ids or len(ids) > MAX_BATCH:
        messages.error(request, _("Choose up to %(n)d jobs and an action.") % {"n": MAX_BATCH})
        return redirect(back)
    priority, group = request.POST.get("priority", "").strip(), request.POST.get("group", "").strip()
    if (action == "priority" and not priority) or (action == "move" and not group):
        messages.error(request, _("Choose the priority or the node group to apply."))
        return redirect(back)
    chains = {c.pk: c for c in Chain.objects.filter(pk__in=ids).select_related("owner")}
    done, failed = 0, []
    for pk in ids:
        chain = chains.get(pk)
        if chain is None:
            failed.append(f"#{pk}: " + _("No such job."))
            continue
        try:
            if action == "priority":
                services.job_admin_set_priority(actor=request.user, chain=chain, priority=priority)
            elif action == "move":
                services.job_admin_move_group(actor=request.user, chain=chain, group=group)
            else:
                services.job_admin_action(actor=request.user, chain=chain, action=action)
            done += 1
        except ApplicationError as exc:
            failed.append(f"#{pk}: {exc.message}")
    if done:
        messages.success(request, ngettext("%(n)d job done.", "%(n)d jobs done.", done) % {"n": done})
    if failed:
        messages.warning(request, " ".join(failed))
    return redirect(back)


# --- scheduler overview ---------------------------------------------------------------------------

PREEMPTIONS_SINCE = timedelta(hours=24)


@monitor_view()
@require_GET
@partial_or_page()
def scheduler_view(request: AdminRequest) -> HttpResponse:
    """What the scheduler sees now: per node group and priority level, what runs and waits and the
    nodes used and free; the waiting queue in its order with each job's reason (as the last pass
    explained it); the nodes held back for a long-waiting job; the last pass; recent preemptions."""
    group = request.GET.get("group", "").strip()
    loads = selectors.scheduler_loads()
    if group and group not in {load.name for load in loads}:
        group = ""
    paginator = IdFirstPaginator(selectors.scheduler_queue(group=group), PAGE_SIZE)  # narrow rows to sort
    page = paginator.get_page(request.GET.get("page"))
    summary = last_pass_summary()
    context = _context(
        request,
        "scheduler",
        loads=loads,
        group=group,
        page=page,
        queue=list(page.object_list),
        summary=summary,
        last_pass_at=datetime.fromtimestamp(summary.at, tz=UTC) if summary else None,
        preemptions=selectors.recent_preemptions(since=timezone.now() - PREEMPTIONS_SINCE),
    )
    if request.htmx:  # a live refresh: the region only
        return render_htmx(request, "monitor/partials/scheduler_live.html", context)
    return render(request, "monitor/scheduler.html", context)


@monitor_view()
@require_GET
def scheduler_history_view(request: AdminRequest) -> HttpResponse:
    """The overview charts' data: per node group, nodes used / free, GPUs used, jobs running and
    waiting (per priority) over the last 24 hours (every minute) or 7 days (every tenth minute),
    as JSON. ``?range=`` is ``24h`` (default) or ``7d``; anything else is a 400."""
    span = request.GET.get("range", "24h")
    if span not in selectors.HISTORY_RANGES:
        return JsonResponse({"error": _("Unknown range: use 24h or 7d.")}, status=400)
    response = JsonResponse(selectors.load_history(span=span, now=timezone.now()))
    response["Cache-Control"] = "private, max-age=30"
    return response


# --- usage --------------------------------------------------------------------------------------


@monitor_view()
@require_GET
def usage_view(request: AdminRequest) -> HttpResponse:
    """GPU-hours per user, team or node group over a period, per day or week, ranked, with the
    GPU-hours lost to preemption; ``?format=csv`` downloads the same table."""
    form = UsagePeriodForm(request.GET)
    if not form.is_valid():
        return render(request, "monitor/usage.html", _context(request, "usage", form=form, report=None), status=400)
    data = form.cleaned_data
    tz = timezone.get_current_timezone()
    start = datetime.combine(data["start"], dt_time.min, tzinfo=tz)
    end = datetime.combine(data["end"] + timedelta(days=1), dt_time.min, tzinfo=tz)
    report = selectors.usage_report(start=start, end=end, by=data["by"], step=data["step"])
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = f"rota-usage-{data['by']}-{data['start'].isoformat()}-{data['end'].isoformat()}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        csv.writer(response).writerows(selectors.usage_csv_rows(report))
        return response
    return render(request, "monitor/usage.html", _context(request, "usage", form=form, report=report))


# --- notices ------------------------------------------------------------------------------------


@monitor_view()
@require_GET
def notices_view(request: AdminRequest) -> HttpResponse:
    """Every notice with whether it is shown now, scheduled or over; root admins write them."""
    paginator = Paginator(selectors.notices_all(), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return render(
        request,
        "monitor/notices.html",
        _context(request, "notices", page=page, notices=list(page.object_list), now=timezone.now()),
    )


def _notice_or_404(pk: int) -> Notice:
    notice = selectors.notice_get(pk=pk)
    if notice is None:
        raise Http404(_("No such notice."))
    return notice


def _notice_form_page(
    request: AdminRequest, form: NoticeForm, notice: Notice | None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "monitor/notice_form.html",
        _context(request, "notices", form=form, notice=notice, groups=selectors.group_names()),
        status=status,
    )


def _notice_save(request: AdminRequest, form: NoticeForm, notice: Notice | None) -> HttpResponse:
    if not form.is_valid():
        return _notice_form_page(request, form, notice, status=400)
    try:
        saved = web_services.notice_save(actor=request.user, notice=form.save(commit=False))
    except ValidationError as exc:
        for name, errors in exc.message_dict.items():
            for error in errors:
                form.add_error(name if name in form.fields else None, error)
        return _notice_form_page(request, form, notice, status=400)
    except ApplicationError as exc:
        add_service_error(form, exc)
        return _notice_form_page(request, form, notice, status=400)
    messages.success(request, _("Notice “%(title)s” saved.") % {"title": saved.title})
    return redirect("monitor:notices")


@monitor_view(Power.NOTICES)
@require_http_methods(["GET", "POST"])
def notice_create_view(request: AdminRequest) -> HttpResponse:
    """Write a notice; it shows on its audience's dashboards from its start (and they are notified)."""
    if request.method == "POST":
        return _notice_save(request, NoticeForm(request.POST, instance=Notice()), None)
    return _notice_form_page(request, NoticeForm(instance=Notice()), None)


@monitor_view(Power.NOTICES)
@require_http_methods(["GET", "POST"])
def notice_edit_view(request: AdminRequest, pk: int) -> HttpResponse:
    notice = _notice_or_404(pk)
    if request.method == "POST":
        return _notice_save(request, NoticeForm(request.POST, instance=notice), notice)
    return _notice_form_page(request, NoticeForm(instance=notice), notice)


@monitor_view(Power.NOTICES)
@require_POST
def notice_expire_view(request: AdminRequest, pk: int) -> HttpResponse:
    """Stop showing a notice now. Audited (``notice.update``)."""
    notice = _notice_or_404(pk)
    try:
        services.notice_expire(actor=request.user, notice=notice)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Notice “%(title)s” is no longer shown.") % {"title": notice.title})
    return redirect("monitor:notices")


@monitor_view(Power.NOTICES)
@require_POST
def notice_delete_view(request: AdminRequest, pk: int) -> HttpResponse:
    """Delete a notice. Audited (``notice.delete``, with what it said)."""
    notice = _notice_or_404(pk)
    try:
        web_services.notice_delete(actor=request.user, notice=notice)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Notice “%(title)s” deleted.") % {"title": notice.title})
    return redirect("monitor:notices")


# --- audit log ----------------------------------------------------------------------------------

AUDIT_CSV_MAX = 50_000


@monitor_view()
@require_GET
def audit_view(request: AdminRequest) -> HttpResponseBase:
    """The audit log: every admin write with who, what, which object, before and after; filtered
    by actor, action, object and dates; paginated; ``?format=csv`` downloads the filtered entries
    (at most ``AUDIT_CSV_MAX``, newest first)."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return render(
            request,
            "monitor/audit.html",
            _context(request, "audit", form=form, page=None, entries=[], types=selectors.audit_target_types()),
            status=400,
        )
    data = form.cleaned_data
    tz = timezone.get_current_timezone()
    filters = selectors.AuditFilters(
        actor=data["actor"].strip(),
        action=data["action"].strip(),
        target_type=data["target_type"].strip(),
        target=data["target"].strip(),
        start=datetime.combine(data["start"], dt_time.min, tzinfo=tz) if data["start"] else None,
        end=datetime.combine(data["end"] + timedelta(days=1), dt_time.min, tzinfo=tz) if data["end"] else None,
    )
    entries = selectors.audit_entries(filters=filters)
    if request.GET.get("format") == "csv":
        response = StreamingHttpResponse(
            (_csv_line(row) for row in selectors.audit_csv_rows(entries[:AUDIT_CSV_MAX].iterator(chunk_size=2000))),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="rota-audit-{timezone.localdate().isoformat()}.csv"'
        return response
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "monitor/audit.html",
        _context(
            request,
            "audit",
            form=form,
            page=page,
            entries=list(page.object_list),
            types=selectors.audit_target_types(),
        ),
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_line(row: list[str]) -> str:
    return str(csv.writer(_Echo()).writerow(row))
