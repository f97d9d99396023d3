"""Rota's objects in HAI's shapes: the task object, its pods, nodes, quotas, images, tokens.

Pure functions over already-loaded rows (callers prefetch; nothing here queries, so list
endpoints stay at a constant number of queries). Words and numbers are HAI's: ``chain_status``
(waiting_init, suspended, running, finished), ``worker_status`` and pod statuses (HAI's EXP_STATUS),
``stop_code`` bit flags (STOP 1, INTERRUPT 16, FAILED 128, INIT_FAILED 256, TIMEOUT 512,
MANUAL_STOP 1024), ``suspend_code`` (0–3, bit 2 = star), priorities (EXTREME_HIGH 50 … LOW 0, AUTO -1).
Dates are naive ISO strings in the server's time zone, as HAI's server sends them: the client
compares some of them with its local naive time and crashes on an aware one.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.core.priorities import Priority
from apps.experiments.choices import (
    ChainStatus,
    EntrypointKind,
    QueueStatus,
    RankStatus,
    StopReason,
    SuspendReason,
    WorkerStatus,
)
from apps.experiments.models import Attempt, Chain, Rank

TASK_TYPE = "training"
NO_LOG_YET = "还没产生日志"  # HAI's "no log yet" (the client compares with it)


class StopCode:
    """HAI's STOP_CODE bit flags."""

    NO_STOP = 0
    STOP = 1
    INTERRUPT = 16
    UNSCHEDULABLE = 32
    FAILED = 128
    INIT_FAILED = 256
    TIMEOUT = 512
    MANUAL_STOP = 1024


CHAIN_STATUS = {
    ChainStatus.WAITING: "waiting_init",
    ChainStatus.SUSPENDED: "suspended",
    ChainStatus.HELD: "suspended",
    ChainStatus.STARTING: "running",
    ChainStatus.RUNNING: "running",
    ChainStatus.SUSPENDING: "running",
    ChainStatus.STOPPING: "running",
    ChainStatus.SUCCEEDED: "finished",
    ChainStatus.FAILED: "finished",
    ChainStatus.STOPPED: "finished",
    ChainStatus.CANCELED: "finished",
}

WORKER_STATUS = {
    WorkerStatus.QUEUED: "queued",
    WorkerStatus.STARTING: "created",
    WorkerStatus.RUNNING: "running",
    WorkerStatus.SUSPENDING: "running",
    WorkerStatus.STOPPING: "stopped_terminating",
    WorkerStatus.SUSPENDED: "stopped",
    WorkerStatus.SUCCEEDED: "succeeded",
    WorkerStatus.FAILED: "failed",
    WorkerStatus.STOPPED: "stopped",
    WorkerStatus.CANCELED: "canceled",
}
# HAI worker_status words a list may filter by → Rota's statuses.
WORKER_STATUS_FILTER: dict[str, set[str]] = {}
for _rota, _hai in WORKER_STATUS.items():
    WORKER_STATUS_FILTER.setdefault(_hai, set()).add(str(_rota))

POD_STATUS = {
    RankStatus.PENDING: "created",
    RankStatus.RUNNING: "running",
    RankStatus.SUCCEEDED: "succeeded",
    RankStatus.FAILED: "failed",
    RankStatus.KILLED: "stopped",
}

_FAILED_CODES = {
    StopReason.START_FAILED: StopCode.INIT_FAILED,
    StopReason.HUNG: StopCode.TIMEOUT,
}


def hai_date(value: datetime | None) -> str | None:
    """A naive ISO string in the server's time zone (HAI's format), or None."""
    if value is None:
        return None
    return timezone.localtime(value).replace(tzinfo=None).isoformat(sep=" ")


def stop_code(attempt: Attempt) -> int:
    """HAI's stop_code of one attempt (0 while it may still run)."""
    status = attempt.worker_status
    if status == WorkerStatus.SUCCEEDED:
        return StopCode.STOP
    if status == WorkerStatus.SUSPENDED:
        if attempt.suspend_reason == SuspendReason.UNSCHEDULABLE:
            return StopCode.UNSCHEDULABLE
        return StopCode.INTERRUPT
    if status == WorkerStatus.FAILED:
        return (
            _FAILED_CODES.get(StopReason(attempt.stop_reason), StopCode.FAILED)
            if attempt.stop_reason
            else (StopCode.FAILED)
        )
    if status in (WorkerStatus.STOPPED, WorkerStatus.CANCELED):
        return StopCode.MANUAL_STOP
    return StopCode.NO_STOP


def exit_code(attempt: Attempt, ranks: list[Rank] | None = None) -> str:
    """HAI's exit_code: a string (``nan`` when there is none), the attempt's or its first failed rank's."""
    if attempt.exit_code is not None:
        return str(attempt.exit_code)
    for rank in ranks or []:
        if rank.exit_code not in (None, 0):
            return str(rank.exit_code)
    return "nan"


def suspend_code(attempt: Attempt, chain: Chain) -> int:
    return int(attempt.suspend_state) | (4 if chain.starred else 0)


def pod_name(chain: Chain, attempt_id: int, rank: int) -> str:
    return f"{chain.owner.username}-{attempt_id}-{rank}".replace("_", "-")


def pod(chain: Chain, attempt: Attempt, rank: Rank) -> dict[str, Any]:
    """One rank as HAI's pod (``task_id, pod_id, job_id, status, node, role`` are required by the client)."""
    node = rank.node
    return {
        "task_id": attempt.pk,
        "pod_id": pod_name(chain, attempt.pk, rank.rank),
        "job_id": rank.rank,
        "status": POD_STATUS.get(RankStatus(rank.status), "unknown"),
        "node": node.name,
        "role": "master" if rank.rank == 0 else "worker",
        "created_at": hai_date(attempt.scheduled_at or attempt.created_at),
        "begin_at": hai_date(rank.started_at),
        "end_at": hai_date(rank.finished_at),
        "memory": node.memory_bytes,
        "cpu": node.cpu,
        "exit_code": "nan" if rank.exit_code is None else str(rank.exit_code),
        "assigned_gpus": list(rank.gpus or []),
    }


def task_schema(chain: Chain) -> dict[str, Any]:
    """The TaskSchema v2 that resubmits this job (``describe`` prints it as YAML)."""
    spec: dict[str, Any] = {
        "workspace": chain.workspace,
        "entrypoint": chain.entrypoint,
        "parameters": shlex.join(chain.parameters or []),
    }
    if chain.env_vars:
        spec["environments"] = dict(chain.env_vars)
    if chain.kind == EntrypointKind.EXECUTABLE:
        spec["entrypoint_executable"] = True
    options: dict[str, Any] = {"whole_life_state": chain.whole_life_state}
    if chain.watchdog_seconds:
        options["watchdog_time"] = chain.watchdog_seconds
    return {
        "version": 2,
        "name": chain.name,
        "task_type": TASK_TYPE,
        "priority": chain.priority,
        "spec": spec,
        "resource": {"image": chain.environment_name, "group": chain.node_group.name, "node_count": chain.node_count},
        "options": options,
    }


def code_file(chain: Chain) -> str:
    entry = (
        chain.entrypoint if chain.entrypoint.startswith("/") else f"{chain.workspace.rstrip('/')}/{chain.entrypoint}"
    )
    return " ".join([entry, shlex.join(chain.parameters or [])]).strip()


def task(
    chain: Chain,
    *,
    attempts: list[Attempt] | None = None,
    ranks: list[Rank] | None = None,
) -> dict[str, Any]:
    """HAI's task object for a chain (its latest attempt). ``attempts`` (in order) fill the
    ``*_list`` fields; ``ranks`` (of the latest attempt, node loaded) fill ``_pods_``."""
    latest = chain.latest_attempt
    assert latest is not None, "a chain always has an attempt"
    tags = chain.tag_names
    history = attempts if attempts is not None else [latest]
    first_id = history[0].pk if history else latest.pk
    body: dict[str, Any] = {
        "id": latest.pk,
        "chain_id": str(chain.pk),
        "first_id": first_id,
        "nb_name": chain.name,
        "user_name": chain.owner.username,
        "code_file": code_file(chain),
        "workspace": chain.workspace,
        "config_json": {
            "schema": task_schema(chain),
            "environments": dict(chain.env_vars or {}),
            "train_image": chain.environment_name,
        },
        "group": chain.node_group.name,
        "nodes": chain.node_count,
        "assigned_nodes": [r.node.name for r in ranks] if ranks is not None else [],
        "restart_count": chain.restart_count,
        "whole_life_state": latest.whole_life_state,
        "backend": chain.environment_name,
        "task_type": TASK_TYPE,
        "queue_status": str(latest.queue_status),
        "notes": chain.notes,
        "priority": latest.effective_priority if latest.effective_priority is not None else chain.priority,
        "priority_name": Priority(chain.priority).label,
        "stop_code": stop_code(latest),
        "suspend_code": suspend_code(latest, chain),
        "mount_code": 2,
        "worker_status": WORKER_STATUS[WorkerStatus(latest.worker_status)],
        "chain_status": CHAIN_STATUS[ChainStatus(chain.status)],
        "star": chain.starred,
        "tags": tags + (["star"] if chain.starred and "star" not in tags else []),
        "id_list": [a.pk for a in history],
        "queue_status_list": [str(a.queue_status) for a in history],
        "worker_status_list": [WORKER_STATUS[WorkerStatus(a.worker_status)] for a in history],
        "stop_code_list": [stop_code(a) for a in history],
        "suspend_code_list": [suspend_code(a, chain) for a in history],
        "whole_life_state_list": [a.whole_life_state for a in history],
        "_pods_": [pod(chain, latest, r) for r in ranks] if ranks is not None else [],
    }
    dates = {
        "created_at": latest.created_at,
        "begin_at": latest.started_at,
        "end_at": latest.finished_at,
        "suspend_updated_at": latest.suspend_requested_at,
    }
    for key, value in dates.items():
        if value is not None:  # the client fills a missing date itself; it may crash on null
            body[key] = hai_date(value)
    return body


def is_finished(attempt: Attempt) -> bool:
    return attempt.queue_status == QueueStatus.FINISHED
