"""Portal pages. Views are thin: they read through selectors, write through services, and turn an
``ApplicationError`` into a message or a form error the user can act on.

HTMX requests (``request.htmx``, django-htmx) get partials — a table body, a row, the live part of
a job's page — with any messages appended as out-of-band toasts; the same URLs answer plain
requests with whole pages (``Vary: HX-Request``, apps/core/htmx.py), so everything also works
without JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from functools import partial, wraps
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.i18n import set_language
from django_htmx.http import trigger_client_event

from apps.accounts import selectors as account_selectors
from apps.accounts import services as account_services
from apps.accounts.models import User
from apps.accounts.posix import posix_account, unmapped_owners_refused
from apps.cluster.models import NodeGroup
from apps.core.errors import ApplicationError, NotFound
from apps.core.htmx import HtmxRequest, partial_or_page, render_htmx
from apps.core.paging import IdFirstPaginator
from apps.core.priorities import Priority
from apps.experiments import services as experiment_services
from apps.experiments.actions import chain_actions
from apps.experiments.choices import QUEUED_CHAIN_STATUSES, ChainAction, ChainStatus, WorkerStatus
from apps.experiments.filtersets import STATUS_GROUPS, ChainFilterSet
from apps.experiments.models import Chain
from apps.experiments.selectors import attempt_runtime_seconds, chain_detail, chains_visible_to
from apps.launcher.backends.local import isolates_owner
from apps.logs.selectors import read_log_page
from apps.quotas.selectors import quota_resolve
from apps.web import selectors
from apps.web import services as web_services
from apps.web.choices import Theme
from apps.web.cli import cli_command
from apps.web.forms import (
    BatchForm,
    MoveGroupForm,
    PreferenceForm,
    PriorityForm,
    SignInForm,
    SubmitForm,
    TagForm,
    TokenCreateForm,
)
from apps.web.presentation import own_quota_holders

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

THEME_COOKIE = "rota_theme"


class SignedInRequest(HtmxRequest):
    """A request to a page behind ``login_required``: its user is a real ``User``."""

    user: User


PAGE_SIZES = (25, 50, 100)
YEAR = 365 * 24 * 3600


# --- helpers ------------------------------------------------------------------------------------


def friendly_404(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Pages answer an unknown (or someone else's) job with the portal's own 404 page, which says
    what to do next, even when ``DEBUG`` would show Django's technical one."""

    @wraps(view)
    def wrapper(request: HtmxRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404:
            if request.htmx:
                raise
            return render(request, "404.html", status=404)

    return wrapper


def safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


def visible_chain(request: SignedInRequest, pk: int) -> Chain:
    """A job the user may see, or 404 (a job of someone else is indistinguishable from none)."""
    chain = chains_visible_to(user=request.user).filter(pk=pk).select_related("owner").first()
    if chain is None:
        raise Http404(_("No such job."))
    return chain


def set_preference_cookies(response: HttpResponse, *, language: str | None, theme: str | None) -> None:
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME, language, max_age=YEAR, samesite="Lax", secure=settings.PRODUCTION
        )
    if theme:
        response.set_cookie(THEME_COOKIE, theme, max_age=YEAR, samesite="Lax", secure=settings.PRODUCTION)


# --- sign in, language, theme -------------------------------------------------------------------


class SignInView(auth_views.LoginView):
    """User name and password. Without "keep me signed in" the session ends with the browser.
    Password guessing is refused by django-axes (``apps/accounts/lockout.py``)."""

    template_name = "registration/login.html"
    form_class = SignInForm
    redirect_authenticated_user = True

    def form_valid(self, form: SignInForm) -> HttpResponse:  # type: ignore[override]  # narrower form type
        response = super().form_valid(form)
        self.request.session.set_expiry(settings.SESSION_COOKIE_AGE if form.cleaned_data.get("remember") else 0)
        preference = selectors.preference_of(user=form.get_user())
        set_preference_cookies(response, language=preference.language or None, theme=preference.theme)
        return response


@require_POST
def language_view(request: HttpRequest) -> HttpResponse:
    """Switch language and come back to the same page (Django's ``set_language``), remembered for
    signed-in users on every device."""
    response = set_language(request)
    code = request.POST.get("language", "")
    if isinstance(request.user, User) and code in dict(settings.LANGUAGES):
        web_services.preference_set(user=request.user, language=code)
    if isinstance(response, HttpResponseRedirect) and code in dict(settings.LANGUAGES):
        set_preference_cookies(response, language=code, theme=None)
    return response


@require_POST
def theme_view(request: HtmxRequest) -> HttpResponse:
    """Light, dark or the system's; the page switches at once (script), this remembers it."""
    theme = request.POST.get("theme", "")
    if theme not in Theme.values:
        return HttpResponse(_("Unknown theme."), status=400)
    if isinstance(request.user, User):
        web_services.preference_set(user=request.user, theme=theme)
    response: HttpResponse = (
        HttpResponse(status=204) if request.htmx else redirect(safe_next(request, reverse("web:dashboard")))
    )
    set_preference_cookies(response, language=None, theme=theme)
    return response


# --- dashboard ----------------------------------------------------------------------------------


@login_required
@require_GET
def admin_entry_view(request: SignedInRequest) -> HttpResponse:
    """``/admin``, the address people type: the admin pages at /monitor (which send people without
    admin rights to their dashboard, told why)."""
    return redirect("monitor:home")


@login_required
@require_GET
@partial_or_page()
def dashboard_view(request: SignedInRequest) -> HttpResponse:
    data = selectors.dashboard(user=request.user)
    context = {"dash": data, "has_quota": any(g.rows for g in data.quota)}
    if request.htmx:
        return render_htmx(request, "web/partials/dashboard_live.html", context)
    return render(request, "web/dashboard.html", context)


# --- experiments list ---------------------------------------------------------------------------


STATUS_TABS = [
    ("", gettext_lazy("All")),
    ("pending", gettext_lazy("Waiting")),
    ("active", gettext_lazy("Running")),
    ("finished", gettext_lazy("Finished")),
]


def status_tab_of(value: str) -> str:
    if value in STATUS_GROUPS:
        return value
    for group, members in STATUS_GROUPS.items():
        if value in members:
            return group
    return ""


def list_filter_data(request: SignedInRequest) -> QueryDict:
    """The list's URL parameters as the shared ``ChainFilterSet`` reads them.

    ``scope=mine`` (the default) shows the user's own jobs; ``scope=all`` adds jobs shared with
    their team (everything, for admins). ``created_until`` is an inclusive day."""
    data = request.GET.copy()
    if data.get("scope", "mine") != "all":
        data.pop("owner", None)  # the queryset holds only the user's own jobs (``list_context``)
    until = data.get("created_until", "")
    if until:
        try:
            data["created_before"] = (date.fromisoformat(until) + timedelta(days=1)).isoformat()
        except ValueError:
            data["created_before"] = "invalid"
    for key in ("created_after", "created_before"):
        if data.get(key) == "":
            del data[key]
    return data


def list_context(request: SignedInRequest) -> dict[str, Any]:
    user = request.user
    own = request.GET.get("scope", "mine") != "all"
    filterset = ChainFilterSet(list_filter_data(request), queryset=selectors.chain_rows(user=user, own=own))
    try:
        per_page = int(request.GET.get("per_page", PAGE_SIZES[0]))
    except ValueError:
        per_page = PAGE_SIZES[0]
    if per_page not in PAGE_SIZES:
        per_page = PAGE_SIZES[0]
    paginator = IdFirstPaginator(filterset.qs, per_page)
    page = paginator.get_page(request.GET.get("page"))
    status = request.GET.get("status", "")
    tab = status_tab_of(status)
    filtered = any(
        request.GET.get(k)
        for k in ("status", "name", "tag", "starred", "group", "priority", "created_after", "created_until")
    )
    errors = {name: errs for name, errs in filterset.form.errors.items() if name not in ("owner",)}
    return {
        "filterset": filterset,
        "filter_errors": errors,
        "page": page,
        "chains": list(page.object_list),
        "per_page": per_page,
        "page_sizes": PAGE_SIZES,
        "status": status,
        "status_tab": tab,
        "status_tabs": STATUS_TABS,
        "sub_statuses": [(s, ChainStatus(s).label) for s in STATUS_GROUPS.get(tab, [])],
        "scope": request.GET.get("scope", "mine"),
        "filtered": filtered,
        "groups": list(NodeGroup.objects.order_by("name").values_list("name", flat=True)),
        "priorities": [p.label for p in Priority],
        "known_tags": selectors.tags_of(user=user),
        "query": request.GET.urlencode(),
    }


@login_required
@require_GET
@partial_or_page("HX-Target")
def chain_list_view(request: SignedInRequest) -> HttpResponse:
    context = list_context(request)
    if request.htmx and request.htmx.target == "chain-results":
        return render_htmx(request, "web/partials/chain_results.html", context)
    return render(request, "web/chain_list.html", context)


def row_context(request: SignedInRequest, pk: int) -> dict[str, Any]:
    chain = selectors.chain_rows(user=request.user).filter(pk=pk).first()
    if chain is None:
        raise Http404(_("No such job."))
    return {"chain": chain}


@login_required
@require_GET
def chain_row_view(request: SignedInRequest, pk: int) -> HttpResponse:
    """One row of the list (live updates refresh rows one by one)."""
    return render_htmx(request, "web/partials/chain_row.html", row_context(request, pk))


@login_required
@require_POST
def chain_batch_view(request: SignedInRequest) -> HttpResponse:
    """Stop, suspend, resume, tag or untag the selected jobs; report what happened to each."""
    form = BatchForm(request.POST)
    back = safe_next(request, reverse("web:chain-list"))
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
    else:
        action = form.cleaned_data["action"]
        result = web_services.batch_apply(
            user=request.user,
            chain_ids=form.cleaned_data["ids"],
            action=action,
            tag=(form.cleaned_data.get("tag") or "").strip(),
        )
        done = len(result.done)
        if done:
            messages.success(request, batch_message(action, done))
        for chain, error in result.failed[:5]:
            messages.warning(
                request, _("%(name)s (#%(id)d): %(error)s") % {"name": chain.name, "id": chain.pk, "error": error}
            )
        if len(result.failed) > 5:
            messages.warning(request, _("%(n)d more could not be changed.") % {"n": len(result.failed) - 5})
        if result.missing:
            messages.warning(
                request,
                ngettext("%(n)d job was not found.", "%(n)d jobs were not found.", len(result.missing))
                % {"n": len(result.missing)},
            )
    if request.htmx:
        return trigger_client_event(render_htmx(request, "web/partials/empty.html", {}), "rota:list-changed")
    return redirect(back)


def batch_message(action: str, n: int) -> str:
    texts = {
        "stop": ngettext("Stopping %(n)d job.", "Stopping %(n)d jobs.", n),
        "suspend": ngettext("Suspending %(n)d job.", "Suspending %(n)d jobs.", n),
        "resume": ngettext("Resumed %(n)d job.", "Resumed %(n)d jobs.", n),
        "tag": ngettext("Tagged %(n)d job.", "Tagged %(n)d jobs.", n),
        "untag": ngettext("Removed the tag from %(n)d job.", "Removed the tag from %(n)d jobs.", n),
    }
    return texts[action] % {"n": n}


# --- experiment detail --------------------------------------------------------------------------


def detail_context(request: SignedInRequest, pk: int, view: str = "overview") -> dict[str, Any]:
    """Everything the job's page shows; ``view`` is "overview" or "logs" (the header is shared)."""
    try:
        chain = chain_detail(user=request.user, key=pk)
    except NotFound:
        raise Http404(_("No such job.")) from None
    attempts = list(chain.attempts.all())
    latest = attempts[-1] if attempts else None
    user = request.user
    actions = chain_actions(user=user, chain=chain)
    return {
        "chain": chain,
        "attempts": attempts,
        "attempts_desc": list(reversed(attempts)),
        "latest": latest,
        "ranks": list(latest.ranks.all()) if latest else [],
        "actions": actions,
        "waiting": chain.status in QUEUED_CHAIN_STATUSES,
        "own_holders": own_quota_holders(
            code=latest.pending_code, holders=latest.pending_holders, owner=user.username, chain_id=chain.pk
        )
        if latest is not None and chain.owner_id == user.pk
        else [],
        "priority_form": PriorityForm(user=user, initial={"priority": chain.priority}),
        "move_groups": [g for g in selectors.usable_node_groups(user=user) if g != chain.node_group.name]
        if ChainAction.MOVE_GROUP in actions
        else [],
        "runtime": sum(attempt_runtime_seconds(a) for a in attempts),
        "cli": cli_command(selectors.chain_submission(chain=chain)).command,
        "team_name": chain.owner.team.name if chain.owner.team is not None else "",
        "view": view,
    }


@login_required
@require_GET
@friendly_404
@partial_or_page()
def chain_detail_view(request: SignedInRequest, pk: int) -> HttpResponse:
    view = "logs" if request.GET.get("view") == "logs" else "overview"
    context = detail_context(request, pk, view)
    if request.htmx:
        return render_htmx(request, "web/partials/chain_live.html", context)
    return render(request, "web/chain_detail.html", context)


#: the job page's plain actions: URL keyword → (the service, what the user is told when it is done)
ACTIONS: dict[str, tuple[Callable[..., Chain], StrOrPromise]] = {
    "stop": (experiment_services.experiment_stop, gettext_lazy("Stopping the job; its processes get SIGTERM.")),
    # HAI's stop --succeeded / --failed (ChainAction.MARK_OUTCOME)
    "stop_succeeded": (
        partial(experiment_services.experiment_stop, outcome=WorkerStatus.SUCCEEDED),
        gettext_lazy("Stopping the job; it is recorded as succeeded once its processes have ended."),
    ),
    "stop_failed": (
        partial(experiment_services.experiment_stop, outcome=WorkerStatus.FAILED),
        gettext_lazy("Stopping the job; it is recorded as failed once its processes have ended."),
    ),
    "suspend": (
        experiment_services.experiment_suspend,
        gettext_lazy("Suspending the job: it gets the notice, saves a checkpoint, then waits until you resume it."),
    ),
    "resume": (experiment_services.experiment_resume, gettext_lazy("Resumed: the job is back in the queue.")),
}


def respond_after_action(request: SignedInRequest, pk: int) -> HttpResponse:
    """The refreshed row (from the list), the live part of the page (from the job page), or a redirect."""
    if request.htmx:
        if request.POST.get("ctx") == "row":
            return render_htmx(request, "web/partials/chain_row.html", row_context(request, pk))
        view = "logs" if request.POST.get("view") == "logs" else "overview"
        return render_htmx(request, "web/partials/chain_live.html", detail_context(request, pk, view))
    page = "web:chain-logs" if request.POST.get("view") == "logs" else "web:chain-detail"
    return redirect(safe_next(request, reverse(page, args=[pk])))


@login_required
@require_POST
def chain_action_view(request: SignedInRequest, pk: int, action: str) -> HttpResponse:
    chain = visible_chain(request, pk)
    service, done = ACTIONS[action]
    try:
        service(actor=request.user, chain=chain)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return respond_after_action(request, pk)


@login_required
@require_POST
def chain_priority_view(request: SignedInRequest, pk: int) -> HttpResponse:
    chain = visible_chain(request, pk)
    form = PriorityForm(request.POST, user=request.user)
    if not form.is_valid():
        messages.error(request, _("Choose one of the priorities offered."))
    else:
        try:
            chain = experiment_services.experiment_set_priority(
                user=request.user,
                chain=chain,
                priority=form.cleaned_data["priority"],
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Priority set to %(p)s.") % {"p": chain.get_priority_display()})
    return respond_after_action(request, pk)


@login_required
@require_POST
def chain_move_view(request: SignedInRequest, pk: int) -> HttpResponse:
    """Move a waiting job to another node group the user may use (``experiment_move_group``)."""
    chain = visible_chain(request, pk)
    groups = selectors.usable_node_groups(user=request.user)
    form = MoveGroupForm(request.POST, groups=groups)
    if not form.is_valid():
        given, known = request.POST.get("group", "").strip(), ", ".join(groups) or _("none")
        messages.error(
            request,
            _("%(g)r is not a node group you may use; choose one of: %(k)s.") % {"g": given, "k": known}
            if given
            else _("Choose one of the node groups you may use: %(k)s.") % {"k": known},
        )
    else:
        try:
            experiment_services.experiment_move_group(actor=request.user, chain=chain, group=form.cleaned_data["group"])
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                _("Moved to %(g)s: the job waits in that group's queue now.") % {"g": form.cleaned_data["group"]},
            )
    return respond_after_action(request, pk)


@login_required
@require_POST
def chain_front_view(request: SignedInRequest, pk: int) -> HttpResponse:
    """Move a waiting job to the front of the owner's own queue."""
    chain = visible_chain(request, pk)
    try:
        web_services.chain_move_to_front(user=request.user, chain=chain)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Moved to the front of your queue; it goes first among your waiting jobs."))
    return respond_after_action(request, pk)


@login_required
@require_POST
def chain_tag_view(request: SignedInRequest, pk: int, remove: bool = False) -> HttpResponse:
    chain = visible_chain(request, pk)
    form = TagForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give a tag of at most 64 characters."))
    else:
        tag = form.cleaned_data["tag"].strip()
        try:
            if remove:
                experiment_services.experiment_untag(user=request.user, chain=chain, tag=tag)
            else:
                experiment_services.experiment_tag(user=request.user, chain=chain, tag=tag)
        except ApplicationError as exc:
            messages.error(request, exc.message)
    return respond_after_action(request, pk)


@login_required
@require_POST
def chain_star_view(request: SignedInRequest, pk: int) -> HttpResponse:
    chain = visible_chain(request, pk)
    try:
        experiment_services.experiment_star(
            user=request.user,
            chain=chain,
            starred=request.POST.get("starred", "1") == "1",
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return respond_after_action(request, pk)


@login_required
@require_POST
def chain_share_view(request: SignedInRequest, pk: int) -> HttpResponse:
    chain = visible_chain(request, pk)
    shared = request.POST.get("shared", "1") == "1"
    try:
        experiment_services.experiment_share(user=request.user, chain=chain, shared=shared)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, _("Your team can see this job now.") if shared else _("Only you can see this job now.")
        )
    return respond_after_action(request, pk)


# --- logs ---------------------------------------------------------------------------------------


@login_required
@require_GET
@friendly_404
def chain_logs_view(request: SignedInRequest, pk: int) -> HttpResponse:
    """The log viewer: one rank at a time, followed live, paged from byte offsets."""
    context = detail_context(request, pk, "logs")
    chain = context["chain"]
    try:
        rank = int(request.GET.get("rank", 0))
    except ValueError:
        rank = 0
    context["rank"] = rank if 0 <= rank < chain.node_count else 0
    context["rank_choices"] = list(range(chain.node_count))
    context["viewer_config"] = {
        "chain": chain.pk,
        "rank": context["rank"],
        "ranks": chain.node_count,
        "attempts": [{"id": a.pk, "index": a.index + 1} for a in context["attempts"]],
        "finished": chain.finished,
        "status": chain.status,
        "readUrl": reverse("web:chain-log-read", args=[chain.pk]),
        "searchUrl": reverse("api-experiment-log-search", args=[chain.pk]),
        "downloadUrl": reverse("api-experiment-log-download", args=[chain.pk]),
        "statusLabels": {s.value: str(s.label) for s in ChainStatus},
    }
    return render(request, "web/chain_logs.html", context)


@login_required
@require_GET
def chain_log_read_view(request: SignedInRequest, pk: int) -> JsonResponse:
    """A page of one rank's log of one attempt, from a byte offset forwards, backwards, or the tail.

    JSON; see ``apps.logs.selectors.read_log_page``. Never reads more than one page of the file."""
    chain = visible_chain(request, pk)
    try:
        page = read_log_page(chain, request.GET)
    except ApplicationError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status)
    return JsonResponse(page)


# --- submit -------------------------------------------------------------------------------------


def submit_form(request: SignedInRequest, choices: selectors.SubmitChoices, **kwargs: Any) -> SubmitForm:
    return SubmitForm(user=request.user, groups=choices.groups, environments=choices.environments, **kwargs)


@login_required
@friendly_404
def submit_view(request: SignedInRequest) -> HttpResponse:
    """The submit form: every field, choices the user may use, inline errors, a CLI preview.

    ``?from=<id>`` prefills it from an existing job (resubmit)."""
    choices = selectors.submit_choices(user=request.user)
    default_workspace = selectors.default_workspace(user=request.user)
    source: Chain | None = None
    if request.method == "POST":
        form = submit_form(request, choices, default_workspace=default_workspace, data=request.POST)
        if form.is_valid():
            try:
                chain = experiment_services.experiment_submit(user=request.user, **form.service_arguments())
            except ApplicationError as exc:
                form.attach_service_errors(exc)
            else:
                messages.success(
                    request, _("Submitted “%(name)s”. Its status and logs update here live.") % {"name": chain.name}
                )
                return redirect("web:chain-detail", pk=chain.pk)
    else:
        from_id = request.GET.get("from", "")
        if from_id.isdigit():
            source = visible_chain(request, int(from_id))
            values = selectors.chain_submission(chain=source)
            values["name"] = selectors.free_chain_name(user=request.user, name=source.name)
        else:
            workspace, last_group = selectors.last_submission(user=request.user)
            values = {
                "environment": choices.environments[0] if choices.environments else None,
                "group": selectors.default_group(choices=choices, last_group=last_group),
                "workspace": workspace or default_workspace,
            }
        form = submit_form(
            request, choices, default_workspace=default_workspace, initial=SubmitForm.initial_from(values)
        )
    return render(
        request,
        "web/submit.html",
        {
            "form": form,
            "preview": cli_command(form.current_values()),
            "source": source,
            "quota_hints": choices.hints,
            "no_groups": not choices.groups,
            "no_environments": not choices.environments,
            **_isolation_notice(request.user),
        },
        status=400 if request.method == "POST" else 200,
    )


def _isolation_notice(user: User) -> dict[str, bool]:
    """What the submit page says about how jobs are isolated on the local backend: nothing (isolated,
    or Kubernetes), that they are not (``single_tenant``), or that this user's jobs will be refused
    for want of a POSIX account (``no_posix_account``)."""
    if settings.ROTA_BACKEND != "local":
        return {"single_tenant": False, "no_posix_account": False}
    has_account = posix_account(user, host_lookup=True) is not None
    refused = not has_account and unmapped_owners_refused()
    return {"single_tenant": not refused and not isolates_owner(uid_mapped=has_account), "no_posix_account": refused}


@login_required
@require_POST
def submit_preview_view(request: SignedInRequest) -> HttpResponse:
    """The CLI command for what the form holds now (the form posts here as the user types)."""
    form = submit_form(request, selectors.submit_choices(user=request.user), data=request.POST)
    return render(request, "web/partials/cli_preview.html", {"preview": cli_command(form.current_values())})


# --- account ------------------------------------------------------------------------------------


@login_required
@require_GET
def profile_view(request: SignedInRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "web/account/profile.html",
        {
            "quota": selectors.my_quota(user=user),
            "resolved": quota_resolve(user=user),
            "groups": sorted(user.groups.values_list("name", flat=True)),
            "tab": "profile",
        },
    )


@never_cache
@login_required
def tokens_view(request: SignedInRequest) -> HttpResponse:
    """My API tokens: create (the secret is shown once, in this response only), list, revoke."""
    user = request.user
    issued = None
    status = 200
    if request.method == "POST":
        form = TokenCreateForm(request.POST)
        if form.is_valid():
            try:
                issued = account_services.token_create(
                    actor=user,
                    name=form.cleaned_data["name"],
                    scope=form.cleaned_data["scope"],
                    expires_at=form.cleaned_data["expires_at"],
                )
            except ApplicationError as exc:
                for field, errors in exc.fields.items():
                    target = "expires_on" if field == "expires_at" else field
                    for error in errors:
                        form.add_error(target if target in form.fields else None, error)
                if not exc.fields:
                    form.add_error(None, exc.message)
                status = 400
            else:
                form = TokenCreateForm()
        else:
            status = 400
    else:
        form = TokenCreateForm()
    show_revoked = request.GET.get("revoked") == "1"
    tokens = list(account_selectors.tokens_of(user=user, include_revoked=show_revoked))
    response = render(
        request,
        "web/account/tokens.html",
        {"form": form, "issued": issued, "tokens": tokens, "show_revoked": show_revoked, "tab": "tokens"},
        status=status,
    )
    return response


@login_required
@require_POST
def token_revoke_view(request: SignedInRequest, pk: int) -> HttpResponse:
    token = account_selectors.token_get_for_owner(user=request.user, token_id=pk)
    if token is None:
        raise Http404(_("No such token."))
    account_services.token_revoke(actor=request.user, token=token)
    messages.success(request, _("Revoked “%(name)s”. Programs using it are signed out.") % {"name": token.name})
    return redirect("web:tokens")


@login_required
def settings_view(request: SignedInRequest) -> HttpResponse:
    preference = selectors.preference_of(user=request.user)
    if request.method == "POST":
        form = PreferenceForm(request.POST, instance=preference)
        if form.is_valid():
            saved = web_services.preference_set(
                user=request.user,
                language=form.cleaned_data["language"],
                theme=form.cleaned_data["theme"],
            )
            response = redirect("web:settings")
            if saved.language:
                set_preference_cookies(response, language=saved.language, theme=None)
            else:
                response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
            set_preference_cookies(response, language=None, theme=saved.theme)
            messages.success(request, _("Settings saved."))
            return response
    else:
        initial: dict[str, str] = {}
        if preference.pk is None:  # never saved: show what the menus at the top chose on this device
            cookie_theme = request.COOKIES.get(THEME_COOKIE, "")
            initial["theme"] = cookie_theme if cookie_theme in Theme.values else Theme.SYSTEM
        form = PreferenceForm(instance=preference, initial=initial)
    return render(request, "web/account/settings.html", {"form": form, "tab": "settings"})
