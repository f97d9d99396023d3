"""Pod and node objects → ``RankObservation``/``NodeObservation``: pure, no API calls.

The mapping (phases, pending reasons, exit codes, platform-ended ranks) is in docs/kubernetes.md.
"""

from __future__ import annotations

import datetime as dt
import re
import signal
from collections.abc import Mapping
from typing import Any

from apps.launcher.backends.base import NodeObservation, RankObservation, RankPhase
from apps.launcher.backends.kubernetes.manifests import CONTAINER_NAME, JsonDict

FINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})


def parse_k8s_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _signal_name(exit_code: int | None) -> str:
    if exit_code is None or not 128 < exit_code < 160:
        return ""
    try:
        return signal.Signals(exit_code - 128).name
    except ValueError:
        return f"signal {exit_code - 128}"


def observe_pod(rank: int, pod: JsonDict, *, stop_reason_annotation: str) -> RankObservation:
    """One pod as a ``RankObservation`` (the mapping table is in docs/kubernetes.md)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    stop_reason = (meta.get("annotations") or {}).get(stop_reason_annotation)
    node = spec.get("nodeName") or _pinned_node(spec)
    container = container_status(status)
    state = container.get("state") or {}
    running = state.get("running") or {}
    terminated = state.get("terminated") or (container.get("lastState") or {}).get("terminated") or {}
    started_at = parse_k8s_time(running.get("startedAt") or terminated.get("startedAt") or status.get("startTime"))
    finished_at = parse_k8s_time(terminated.get("finishedAt"))
    exit_code = terminated.get("exitCode")
    exit_code = int(exit_code) if isinstance(exit_code, int) else None

    disruption = _disruption(meta, status) if not stop_reason else ""
    if disruption:
        final = phase in FINAL_POD_PHASES
        return RankObservation(
            rank,
            RankPhase.KILLED if final else (RankPhase.PENDING if phase == "Pending" else RankPhase.RUNNING),
            node,
            exit_code if final else None,
            started_at if phase != "Pending" else None,
            finished_at if final else None,
            disruption,
            disrupted=True,
        )
    if phase == "Pending":
        message = _pending_message(status)
        stuck = _waiting_reason(status) in STUCK_WAITING_REASONS
        return RankObservation(rank, RankPhase.PENDING, node, started_at=None, message=message, stuck=stuck)
    if phase == "Running":
        message = "terminating" if meta.get("deletionTimestamp") else ""
        return RankObservation(rank, RankPhase.RUNNING, node, started_at=started_at, message=message)
    if phase in FINAL_POD_PHASES:
        if phase == "Succeeded" and exit_code is None:
            exit_code = 0
        if stop_reason:
            message = f"ended after {stop_reason}"
            if exit_code is not None:
                message += f" (exit {exit_code})"
            return RankObservation(rank, RankPhase.KILLED, node, exit_code, started_at, finished_at, message)
        if phase == "Succeeded":
            return RankObservation(rank, RankPhase.SUCCEEDED, node, exit_code, started_at, finished_at)
        return RankObservation(
            rank, RankPhase.FAILED, node, exit_code, started_at, finished_at, _failure_message(status, terminated)
        )
    # "Unknown": the node stopped reporting; not final — the node watch decides about requeueing.
    message = f"pod phase {phase}: node not reporting"
    return RankObservation(rank, RankPhase.RUNNING, node, started_at=started_at, message=message)


#: Pod ``status.reason`` values with which the cluster itself ends a pod.
DISRUPTION_POD_REASONS = frozenset({"Evicted", "Preempting", "Terminated", "NodeShutdown", "NodeLost"})
#: Container waiting reasons that do not resolve by waiting (a slow image pull shows
#: ``ContainerCreating`` and is progressing).
STUCK_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def _disruption(meta: JsonDict, status: JsonDict) -> str:
    """Why the cluster (not the platform: no stop-reason annotation) is ending a pod; "" if it is not.

    A drain or ``kubectl delete`` sets ``deletionTimestamp``; evictions (API, node pressure),
    preemption by the Kubernetes scheduler and graceful node shutdown add the ``DisruptionTarget``
    condition or end the pod with one of ``DISRUPTION_POD_REASONS``.
    """
    for condition in status.get("conditions") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") == "DisruptionTarget"
            and condition.get("status") == "True"
        ):
            detail = _reason_message(condition.get("reason") or "DisruptionTarget", condition.get("message"))
            return f"ended by the cluster ({detail})"
    if status.get("reason") in DISRUPTION_POD_REASONS:
        return f"ended by the cluster ({_reason_message(status.get('reason'), status.get('message'))})"
    if meta.get("deletionTimestamp"):
        return "deleted by the cluster or an operator, not by Rota (a drain or kubectl delete)"
    return ""


def _waiting_reason(status: JsonDict) -> str:
    return str(((container_status(status).get("state") or {}).get("waiting") or {}).get("reason") or "")


def observe_node(node: JsonDict) -> NodeObservation:
    """One node: ready (the kubelet reports), schedulable (not cordoned) and its allocatable resources.

    A cordoned node is *ready*: it takes no new work, but the jobs on it go on (a drain evicts them,
    which the pods' ``DisruptionTarget`` condition reports).
    """
    name = (node.get("metadata") or {}).get("name") or ""
    conditions = (node.get("status") or {}).get("conditions") or []
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    schedulable = not (node.get("spec") or {}).get("unschedulable")
    ready = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None)
    if ready is None:
        is_ready, reason = False, "no Ready condition"
    elif ready.get("status") != "True":
        is_ready, reason = False, str(ready.get("reason") or "NotReady")
    else:
        is_ready, reason = True, "" if schedulable else "cordoned"
    return NodeObservation(
        name,
        is_ready,
        reason,
        schedulable=schedulable,
        allocatable_cpu=parse_quantity(allocatable.get("cpu")),
        allocatable_memory_bytes=_int_or_none(parse_quantity(allocatable.get("memory"))),
    )


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
}


def parse_quantity(value: object) -> float | None:
    """A Kubernetes quantity (``"15900m"``, ``"503Gi"``, ``"1.5"``) as a number; ``None`` if not one."""
    match = _QUANTITY.match(str(value).strip()) if value is not None else None
    if match is None or match[2] not in _SUFFIXES:
        return None
    return float(match[1]) * _SUFFIXES[match[2]]


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


def container_status(status: JsonDict) -> JsonDict:
    statuses = [s for s in status.get("containerStatuses") or [] if isinstance(s, dict)]
    for container in statuses:
        if container.get("name") == CONTAINER_NAME:
            return container
    return statuses[0] if statuses else {}


def container_ran(status: JsonDict) -> bool:
    container = container_status(status)
    terminated = (container.get("state") or {}).get("terminated") or {}
    return bool(terminated.get("containerID") or terminated.get("startedAt") or container.get("containerID"))


def _pinned_node(spec: JsonDict) -> str:
    try:
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        return str(terms[0]["matchFields"][0]["values"][0])
    except (KeyError, IndexError, TypeError):
        return ""


def _reason_message(reason: object, message: object) -> str:
    reason_text = str(reason or "")
    message_text = str(message or "")
    if reason_text and message_text:
        return f"{reason_text}: {message_text}"
    return reason_text or message_text


def _pending_message(status: JsonDict) -> str:
    waiting = (container_status(status).get("state") or {}).get("waiting") or {}
    if waiting.get("reason"):
        return _reason_message(waiting.get("reason"), waiting.get("message"))
    for condition in status.get("conditions") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
        ):
            return _reason_message(condition.get("reason") or "Unschedulable", condition.get("message"))
    return _reason_message(status.get("reason"), status.get("message"))


def _failure_message(status: JsonDict, terminated: Mapping[str, Any]) -> str:
    if terminated:
        reason = str(terminated.get("reason") or "Error")
        exit_code = terminated.get("exitCode")
        signal_name = _signal_name(exit_code if isinstance(exit_code, int) else None)
        if signal_name and reason != "OOMKilled":
            reason = f"{reason} ({signal_name})"
        return _reason_message(reason, terminated.get("message"))
    return _reason_message(status.get("reason"), status.get("message")) or "Failed"
