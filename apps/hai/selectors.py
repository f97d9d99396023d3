"""Reads for the HAI endpoints, on top of ``apps.experiments.selectors`` (visibility lives there).

HAI addresses a task by ``id`` (an attempt id, HAI's task id: Rota's ``MARSV2_TASK_ID``),
``chain_id`` (Rota's chain id) or ``nb_name`` (the name of one of your jobs). Every follow-up
call of the client uses ``chain_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.experiments import selectors as experiment_selectors
from apps.experiments.models import Attempt, Chain, Rank
from apps.hai import presenters
from apps.hai.envelope import HaiError, int_param

MAX_PAGE = 1_000_000  # keeps the SQL offset in range


def task_chain(*, user: User, request: HttpRequest) -> Chain:
    """The chain a request's ``id`` / ``chain_id`` / ``nb_name`` names, if the user may see it."""
    visible = experiment_selectors.chains_visible_to(user=user)
    for name in ("chain_id", "id"):
        raw = request.GET.get(name, "").strip()
        if raw in ("", "None"):
            continue
        if not raw.isdigit():
            raise HaiError(_("%(name)s must be a number (got %(value)r).") % {"name": name, "value": raw})
        if name == "chain_id":
            chain = visible.filter(pk=int(raw)).first()
        else:
            chain = visible.filter(attempts__pk=int(raw)).first()
        if chain is None:
            raise HaiError(
                _("No task with %(name)s=%(value)s that you can see.") % {"name": name, "value": raw}, status=404
            )
        return chain
    nb_name = request.GET.get("nb_name", "").strip()
    if nb_name:
        chain = Chain.objects.filter(owner=user, name=nb_name).order_by("finished", "-id").first()
        if chain is None:
            raise HaiError(_("You have no task named %(name)r.") % {"name": nb_name}, status=404)
        return chain
    raise HaiError(_("Say which task: pass id, chain_id or nb_name."))


def _with_history(queryset: QuerySet[Chain], *, pods: bool) -> QuerySet[Chain]:
    prefetches: list[Prefetch[str] | str] = [
        "tags",
        Prefetch("attempts", queryset=Attempt.objects.order_by("index"), to_attr="hai_attempts"),
    ]
    if pods:
        prefetches.append(
            Prefetch(
                "latest_attempt__ranks",
                queryset=Rank.objects.select_related("node").order_by("rank"),
                to_attr="hai_ranks",
            )
        )
    return queryset.select_related("latest_attempt", "owner", "node_group").prefetch_related(*prefetches)


def task_detail(*, chain: Chain) -> dict[str, object]:
    """HAI's task object with its pods and history (a constant number of queries)."""
    loaded = _with_history(Chain.objects.filter(pk=chain.pk), pods=True).get()
    return present(loaded, pods=True)


def present(chain: Chain, *, pods: bool) -> dict[str, object]:
    latest = chain.latest_attempt
    ranks = getattr(latest, "hai_ranks", None) if pods and latest is not None else None
    return presenters.task(chain, attempts=getattr(chain, "hai_attempts", None), ranks=ranks)


@dataclass(frozen=True)
class TaskPage:
    tasks: list[dict[str, object]]
    total: int


def task_list(*, user: User, request: HttpRequest) -> TaskPage:
    """One page of the user's (and their team's shared) tasks, newest first, HAI's filters applied.

    Four queries whatever the page size: count, chains, attempts, and ranks when ``select_pods``.
    """
    page = int_param(request, "page", 1, minimum=1, maximum=MAX_PAGE)
    page_size = int_param(request, "page_size", 12, minimum=1, maximum=100)
    queryset = experiment_selectors.chains_visible_to(user=user)
    task_types = request.GET.getlist("task_type")
    if task_types and presenters.TASK_TYPE not in task_types:
        queryset = queryset.none()  # Rota runs training tasks only
    statuses = request.GET.getlist("worker_status")
    if statuses:
        rota_statuses = set().union(*(presenters.WORKER_STATUS_FILTER.get(s, set()) for s in statuses))
        queryset = queryset.filter(latest_attempt__worker_status__in=rota_statuses)
    queue_statuses = request.GET.getlist("queue_status")
    if queue_statuses:
        queryset = queryset.filter(latest_attempt__queue_status__in=queue_statuses)
    for tag in request.GET.getlist("tag"):
        queryset = queryset.filter(Q(starred=True) if tag == "star" else Q(tags__name=tag))
    for tag in request.GET.getlist("excluded_tag"):
        queryset = queryset.exclude(Q(starred=True) if tag == "star" else Q(tags__name=tag))
    groups = request.GET.getlist("group")
    if groups:
        queryset = queryset.filter(node_group__name__in=groups)
    pattern = request.GET.get("nb_name_pattern", "").strip()
    if pattern:
        queryset = queryset.filter(name__icontains=pattern)
    if request.GET.get("only_star", "").lower() in {"1", "true"}:
        queryset = queryset.filter(starred=True)
    queryset = queryset.distinct()
    total = queryset.count()
    pods = request.GET.get("select_pods", "True").lower() in {"1", "true"}
    start = (page - 1) * page_size
    chains = list(_with_history(queryset.order_by("-id"), pods=pods)[start : start + page_size])
    return TaskPage(tasks=[present(chain, pods=pods) for chain in chains], total=total)
