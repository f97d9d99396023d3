"""HAI's endpoints: each validates its query parameters and calls one Rota service or selector.

Answers use HAI's envelope (``apps/hai/envelope.py``) and HAI's shapes (``apps/hai/presenters.py``).
Which client command calls what is in docs/hai-compat.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts import services as account_services
from apps.accounts.models import ApiToken, User
from apps.cluster import selectors as cluster_selectors
from apps.cluster.choices import NodeState
from apps.core.priorities import Priority
from apps.experiments import selectors as experiment_selectors
from apps.experiments import services as experiment_services
from apps.experiments.choices import WorkerStatus
from apps.experiments.models import Attempt, Rank
from apps.hai import presenters
from apps.hai import selectors as hai_selectors
from apps.hai.envelope import HaiError, error_response, hai_endpoint, int_param, ok, param
from apps.hai.taskschema import submit_arguments
from apps.logs.store import ChainCursor, get_log_store
from apps.quotas import selectors as quota_selectors

# HAI's "never expires" (the client compares expire_at with local naive time: no time zone).
NEVER = "3000-01-01 00:00:00"
CREATED_MSG = "任务创建队列成功，请等待调度"  # HAI's message; the client shows it as is


def _naive(value: datetime | None) -> str:
    return presenters.hai_date(value) or NEVER


# --- users and tokens ---------------------------------------------------------------------------


@hai_endpoint(write=True)
def access_token_create(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """``hai-cli init``: exchange the presented token for a new token of the same scope and expiry."""
    access_user = param(request, "access_user_name").strip()
    owner = user
    if access_user and access_user != user.username:
        owner = User.objects.filter(username=access_user).first() or user
        if owner.pk == user.pk:
            raise HaiError(_("No user %(u)r.") % {"u": access_user}, status=404)
    issued = account_services.token_create(
        actor=user, user=owner, name="hai-cli", scope=token.scope, expires_at=token.expires_at
    )
    return ok(
        result={
            "from_user_name": user.username,
            "access_user_name": owner.username,
            "access_scope": issued.token.scope,
            "access_token": issued.raw,
            "expire_at": _naive(issued.token.expires_at),
        }
    )


def _user_info(user: User, token: ApiToken) -> dict[str, Any]:
    groups = sorted(user.group_names())
    team = user.team.name if user.team_id and user.team else "default"
    return {
        "user_id": user.pk,
        "user_name": user.username,
        "nick_name": user.nickname or user.username,
        "role": user.role,
        "shared_group": team,
        "group_list": sorted({user.role, "public", *groups}),
        "user_group": groups,
        "user_shared_group": team,
        "access_scope": token.scope,
    }


@hai_endpoint()
def user_info(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    return ok(result=_user_info(user, token))


@hai_endpoint()
def access_token_list(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """The user's usable tokens, secrets masked (Rota never shows a token twice)."""
    rows = ApiToken.objects.active().filter(user=user).exclude(scope="job").order_by("-created_at")
    return ok(
        result={
            "access_tokens": [
                {
                    "from_user_name": (t.created_by.username if t.created_by_id and t.created_by else user.username),
                    "access_user_name": user.username,
                    "access_scope": t.scope,
                    "access_token": f"rota_{t.prefix}_…",
                    "name": t.name,
                    "expire_at": _naive(t.expires_at),
                    "created_at": presenters.hai_date(t.created_at),
                    "active": True,
                }
                for t in rows.select_related("created_by")
            ]
        }
    )


def _quota_key(group: str, level: int) -> str:
    return f"{group}-{Priority(level).name}"


def _used(quota: Mapping[tuple[str, int], int], used: Mapping[tuple[str, int], int]) -> dict[str, int]:
    keys = sorted(set(quota) | set(used))
    return {_quota_key(g, p): used.get((g, p), 0) for g, p in keys}


@hai_endpoint()
def quota_list(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """Node quota per (group, priority) as ``node-G-P``, nodes in use as ``G-P``, dev-container quota."""
    quota = quota_selectors.quota_resolve(user=user)
    used = experiment_selectors.quota_usage(user=user)
    return ok(
        result={
            "node_quota": {f"node-{_quota_key(g, p)}": n for (g, p), n in sorted(quota.node.items())},
            "node_quota_limit": {f"node_limit-{_quota_key(g, p)}": n for (g, p), n in sorted(quota.node_limit.items())},
            "node_quota_limit_extra": {},
            # every quota key, 0 when unused: hai-cli's whoami shows only the keys found here
            "used_node_quota": _used(quota.node, used),
            "jupyter_quota": {
                g: {"cpu": j.cpu, "memory": j.memory_gib, "quota": j.containers}
                for g, j in sorted(quota.jupyter.items())
            },
            "train_environments": list(quota.environments),
            "port_quota": 0,
            "spot_jupyter": 0,
            "dedicated_jupyter": 0,
            "background_task": 0,
        }
    )


@hai_endpoint()
def training_quota_used(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    quota = quota_selectors.quota_resolve(user=user)
    used = experiment_selectors.quota_usage(user=user)
    return ok(
        result={
            "user_name": user.username,
            "quota": {f"node-{_quota_key(g, p)}": n for (g, p), n in sorted(quota.node_quota.items())},
            "quota_limit": {f"node_limit-{_quota_key(g, p)}": n for (g, p), n in sorted(quota.node_limit.items())},
            "quota_limit_extra": {},
            "all_quota": {f"node-{_quota_key(g, p)}": n for (g, p), n in sorted(quota.node.items())},
            "already_used_quota": _used(quota.node, used),
        }
    )


# --- cluster ------------------------------------------------------------------------------------


@hai_endpoint()
def node_list(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """Every node with HAI's fields (``hai-cli nodes`` reads name, status, working, mars_group, cluster).

    Who works on a node is shown to admins and to the owner of the job; others see only that it is busy.
    """
    holders = {
        rank.node_id: rank
        for rank in Rank.objects.filter(holds_node=True)
        .select_related("attempt__chain__owner")
        .only(
            "node_id",
            "attempt__id",
            "attempt__chain__id",
            "attempt__chain__owner__username",
            "attempt__chain__owner__role",
        )
    }
    rows = []
    for node in cluster_selectors.nodes_list():
        rank = holders.get(node.pk)
        chain = rank.attempt.chain if rank is not None else None
        mine = chain is not None and (chain.owner_id == user.pk or user.is_platform_admin)
        rows.append(
            {
                "name": node.name,
                "status": "Ready" if node.state == NodeState.READY else "NotReady",
                "state": node.state,
                "mars_group": node.group.name,
                "group": node.group.name,
                "cluster": node.room or "rota",
                "room": node.room,
                "gpu_num": node.gpu_count,
                "cpu": node.cpu,
                "memory": node.memory_bytes,
                "type": "gpu" if node.gpu_count else "cpu",
                "use": "training",
                "origin_group": node.group.name,
                "schedule_zone": None,
                "working": presenters.TASK_TYPE if chain is not None else None,
                "working_user": chain.owner.username if mine and chain is not None else None,
                "working_user_role": chain.owner.role if mine and chain is not None else None,
                "working_task_id": rank.attempt.pk if mine and rank is not None else None,
            }
        )
    return ok(cluster_df=rows, containers=[], mount_code={})


@hai_endpoint()
def train_image_list(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """Environments the user may use as HAI's train images (``quota`` orders them: default first)."""
    environments = list(quota_selectors.environments_for(user=user))
    return ok(
        result={
            "mars_images": [
                {
                    "env_name": env.name,
                    "image": env.image,
                    "quota": len(environments) - i,
                    "config": {
                        "python": env.interpreter,
                        "cuda": "",
                        "hf_envs": [],
                        "environments": dict(env.env_vars or {}),
                    },
                }
                for i, env in enumerate(environments)
            ],
            "user_images": [],
        }
    )


# --- tasks --------------------------------------------------------------------------------------


@hai_endpoint(write=True)
def task_create(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """``hai-cli python|bash|exec|run``: a TaskSchema v2 body becomes ``experiment_submit``."""
    try:
        schema = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise HaiError(_("The body must be a TaskSchema v2 JSON object.")) from None
    chain = experiment_services.experiment_submit(user=user, **submit_arguments(schema))
    return ok(msg=CREATED_MSG, task=hai_selectors.task_detail(chain=chain))


@hai_endpoint()
def task_get(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    chain = hai_selectors.task_chain(user=user, request=request)
    return ok(result={"task": hai_selectors.task_detail(chain=chain)})


@hai_endpoint()
def task_list(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    page = hai_selectors.task_list(user=user, request=request)
    return ok(result={"tasks": page.tasks, "total": page.total})


def unsupported(request: HttpRequest, what: str) -> JsonResponse:
    """What Rota has no counterpart for: HAI's error envelope saying so (never a 500)."""
    return error_response(what, status=404)


def not_served(request: HttpRequest, path: str) -> JsonResponse:
    return error_response(
        _("Rota does not serve /%(path)s (see docs/hai-compat.md for what the HAI-compatible API offers).")
        % {"path": path},
        status=404,
    )


# --- task actions -------------------------------------------------------------------------------


STOP_OPS = {"stop": WorkerStatus.STOPPED, "succeed": WorkerStatus.SUCCEEDED, "fail": WorkerStatus.FAILED}


@hai_endpoint(write=True)
def task_stop(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """``hai-cli stop [--succeeded|--failed]``: stop the job (a waiting one is canceled at once),
    recorded as stopped, succeeded or failed."""
    chain = hai_selectors.task_chain(user=user, request=request)
    op = param(request, "op", "stop")
    outcome = STOP_OPS.get(op)
    if outcome is None:
        raise HaiError(_("op must be stop, succeed or fail (got %(op)r).") % {"op": op})
    experiment_services.experiment_stop(actor=user, chain=chain, outcome=outcome)
    return ok(msg=_("Stopping task %(id)s.") % {"id": chain.pk})


@hai_endpoint(write=True)
def task_suspend(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """Suspend (``restart_delay`` is ignored, as by HAI): the job checkpoints and waits for resume."""
    chain = hai_selectors.task_chain(user=user, request=request)
    experiment_services.experiment_suspend(actor=user, chain=chain)
    return ok(msg=_("Suspending task %(id)s; resume it to let it run again.") % {"id": chain.pk})


@hai_endpoint(write=True)
def task_resume(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    chain = hai_selectors.task_chain(user=user, request=request)
    chain = experiment_services.experiment_resume(actor=user, chain=chain)
    return ok(msg=_("Task %(id)s may run again.") % {"id": chain.pk}, task=hai_selectors.task_detail(chain=chain))


@hai_endpoint(write=True)
def task_priority(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """Priority (HAI's names or numbers) and/or ``custom_rank``; once per 10 s per task, as HAI."""
    chain = hai_selectors.task_chain(user=user, request=request)
    priority = param(request, "priority").strip() or None
    raw_rank = param(request, "custom_rank").strip()
    try:
        custom_rank = float(raw_rank) if raw_rank else None
    except ValueError:
        custom_rank = math.nan
    if custom_rank is not None and not math.isfinite(custom_rank):
        raise HaiError(_("custom_rank must be a finite number (got %(v)r).") % {"v": raw_rank})
    chain = experiment_services.experiment_set_priority(
        user=user, chain=chain, priority=priority, custom_rank=custom_rank
    )
    return ok(msg=_("Priority of task %(id)s is now %(p)s.") % {"id": chain.pk, "p": Priority(chain.priority).name})


@hai_endpoint(write=True)
def task_tag(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    chain = hai_selectors.task_chain(user=user, request=request)
    tag = param(request, "tag").strip()
    if tag.startswith("_"):
        raise HaiError(_("Tags starting with '_' are reserved."))
    if tag == "star":
        experiment_services.experiment_star(user=user, chain=chain, starred=True)
        return ok(msg=_("Starred."))
    tags = experiment_services.experiment_tag(user=user, chain=chain, tag=tag)
    return ok(msg=_("Tags: %(t)s") % {"t": ", ".join(tags)})


@hai_endpoint(write=True)
def task_untag(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    chain = hai_selectors.task_chain(user=user, request=request)
    tag = param(request, "tag").strip()
    if tag == "star":
        experiment_services.experiment_star(user=user, chain=chain, starred=False)
        return ok(msg=_("Unstarred."))
    tags = experiment_services.experiment_untag(user=user, chain=chain, tag=tag)
    return ok(msg=_("Tags: %(t)s") % {"t": ", ".join(tags) or "-"})


# --- logs ---------------------------------------------------------------------------------------

LOG_PAGE_BYTES = 2 * 1024 * 1024  # per poll; the client polls every 11 s


def _parse_last_seen(raw: str, attempt_ids: list[int]) -> ChainCursor | None:
    """HAI's ``last_seen``: ``null``/``None``/absent on the first call, else the JSON we sent."""
    text = raw.strip()
    if text in ("", "null", "None"):
        return None
    try:
        value = json.loads(text)
        cursor = ChainCursor(int(value["id"]), int(value["offset"]))
    except (ValueError, TypeError, KeyError):
        raise HaiError(_("last_seen must be the last_seen object of the previous answer, or null.")) from None
    if cursor.attempt_id not in attempt_ids or cursor.offset < 0:
        raise HaiError(_("last_seen does not belong to this task."))
    return cursor


@hai_endpoint()
def task_log(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """``hai-cli logs [-f]``: one rank's log across the chain's attempts, continued by ``last_seen``.

    The first call (``last_seen`` null) gets the whole log, or its last 2 MiB when longer. Each
    answer's ``stop_code`` stays 0 until the job has ended *and* everything was sent, so the
    client's follow ends on the poll that delivered the last line (1: succeeded, exit 0;
    ≥128: failed or stopped, exit 1 printing ``exit_code``). A suspended job goes on in a new
    attempt, so its follow goes on too.
    """
    chain = hai_selectors.task_chain(user=user, request=request)
    rank = int_param(request, "rank", 0, minimum=0, maximum=chain.node_count - 1)
    ids = experiment_selectors.log_attempt_ids(chain=chain)
    cursor = _parse_last_seen(param(request, "last_seen"), ids)
    store = get_log_store()
    page = store.read_chain(str(chain.pk), ids, rank, cursor=cursor, limit=LOG_PAGE_BYTES)
    data, position, eof = page.data, page.cursor, page.eof
    if cursor is None and not eof:  # too long for one answer: its end, from a line start
        tail = store.read(str(chain.pk), ids[-1], rank, offset=-LOG_PAGE_BYTES, limit=LOG_PAGE_BYTES)
        data, position, eof = tail.data, ChainCursor(ids[-1], tail.next_offset), tail.eof
    chain.refresh_from_db(fields=["finished", "latest_attempt"])
    assert chain.latest_attempt_id is not None, "a chain always has an attempt"
    latest = Attempt.objects.prefetch_related("ranks").get(pk=chain.latest_attempt_id)
    done = chain.finished and eof and position.attempt_id == ids[-1]
    if not data and cursor is None and position == ChainCursor(ids[0], 0):
        data = presenters.NO_LOG_YET
    return ok(
        msg="",
        data=data,
        stop_code=presenters.stop_code(latest) if done else presenters.StopCode.NO_STOP,
        exit_code=presenters.exit_code(latest, list(latest.ranks.all())),
        error_msg=latest.failure_message,
        restart_log={},
        last_seen={
            "timestamp": presenters.hai_date(timezone.now()),
            "offset": position.offset,
            "mtime": presenters.hai_date(timezone.now()),
            "id": position.attempt_id,
        },
    )


@hai_endpoint()
def task_sys_log(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """What the platform did with the task, attempt by attempt (HAI's system log)."""
    chain = hai_selectors.task_chain(user=user, request=request)
    lines = []
    for attempt in Attempt.objects.filter(chain=chain).order_by("index"):
        parts = [
            f"[{presenters.hai_date(attempt.created_at)}] attempt {attempt.index + 1} (id {attempt.pk}): "
            f"{presenters.WORKER_STATUS[WorkerStatus(attempt.worker_status)]}"
        ]
        if attempt.started_at:
            parts.append(f"started {presenters.hai_date(attempt.started_at)}")
        if attempt.finished_at:
            parts.append(f"ended {presenters.hai_date(attempt.finished_at)}")
        if attempt.suspend_reason:
            parts.append(f"suspended: {attempt.get_suspend_reason_display()}")
        if attempt.stop_reason:
            parts.append(f"stopped: {attempt.get_stop_reason_display()}")
        if attempt.failure_message:
            parts.append(attempt.failure_message)
        if attempt.pending_message and attempt.queue_status == "queued":
            parts.append(f"waiting: {attempt.pending_message}")
        lines.append("; ".join(parts))
    return ok(data="\n".join(lines) + "\n")


@hai_endpoint()
def task_log_search(request: HttpRequest, *, user: User, token: ApiToken) -> dict[str, Any]:
    """``search_in_global``: how many lines of the latest attempt match ``content``, per rank."""
    chain = hai_selectors.task_chain(user=user, request=request)
    content = param(request, "content")
    ids = experiment_selectors.log_attempt_ids(chain=chain)
    ranks = list(range(chain.node_count))
    try:
        result = get_log_store().search(str(chain.pk), ids[-1], ranks, content)
    except ValueError as exc:
        raise HaiError(str(exc)) from None
    return ok(data=[result.counts.get(rank, 0) for rank in ranks])
