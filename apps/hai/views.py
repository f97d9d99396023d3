"""HAI's endpoints: each validates its query parameters and calls one Rota service or selector.

Answers use HAI's envelope (``apps/hai/envelope.py``) and HAI's shapes (``apps/hai/presenters.py``).
Which client command calls what is in docs/hai-compat.md.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _

from apps.accounts import services as account_services
from apps.accounts.models import ApiToken, User
from apps.cluster import selectors as cluster_selectors
from apps.cluster.choices import NodeState
from apps.core.priorities import Priority
from apps.experiments import selectors as experiment_selectors
from apps.experiments import services as experiment_services
from apps.experiments.models import Rank
from apps.hai import presenters
from apps.hai import selectors as hai_selectors
from apps.hai.envelope import HaiError, error_response, hai_endpoint, ok, param
from apps.hai.taskschema import submit_arguments
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
            "used_node_quota": {_quota_key(g, p): n for (g, p), n in sorted(used.items())},
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
            "already_used_quota": {_quota_key(g, p): n for (g, p), n in sorted(used.items())},
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
