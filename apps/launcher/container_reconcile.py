"""The launcher's pass over development containers: make the backend match the database.

Level-triggered and idempotent, like the job reconcile: each pass reads every container on a node
(starting, running, stopping) and what the backend sees of its current run, and does the next
thing. It keeps no memory between passes; backends start each service at most once, and every
status change is a conditional report (``apps.containers.services.container_observed``) about one
run, so two passes at once, or a report about an older run, change nothing twice.

- **starting**: give TCP services their ports (NodePorts on Kubernetes; locally a port of the
  machine for the run's sshd), start the run's services; once JupyterLab answers its status API with the run's
  token → ``running`` (its address recorded for the proxy). JupyterLab ending, or not answering
  within ``ROTA_CONTAINERS['START_TIMEOUT_SECONDS']`` → stop, ``failed`` with the reason.
- **running**: record each service's state; restart the services the owner asked to restart
  (a step per pass: SIGTERM, SIGKILL after ``ROTA_CONTAINERS['STOP_GRACE_SECONDS']``, start again;
  a JupyterLab being restarted is not a failed one); JupyterLab ending → ``failed``; the node
  lost → stop (queued again if still wanted). Other services may end (a start-up script does)
  without ending the container.
- **stopping**: stop the run, a step per pass (SIGTERM, then SIGKILL once the stop grace has
  passed: the backend keeps the time, so a restarted portal goes on); once nothing is left,
  forget it → ``stopped``, node and ports freed (or queued again for a restart). Never a wait in
  the pass for the grace.
Runs the backend still has that no container claims any more (a failed run) are stopped the same
way, pass after pass, and forgotten once ended.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_noop

from apps.cluster.choices import NodeState
from apps.cluster.selectors import mounts_for
from apps.containers import services as container_services
from apps.containers.choices import ON_NODE, ContainerStatus, StopReason
from apps.containers.layout import service_slots
from apps.containers.models import Container
from apps.containers.tokens import container_token
from apps.core.errors import ApplicationError
from apps.launcher.backends import get_container_backend
from apps.launcher.backends.base import MountSpec, RankPhase
from apps.launcher.backends.container_base import ContainerBackend, ContainerSpec, ServiceSpec
from apps.launcher.pods import pod_customisation, pod_home, run_as

logger = logging.getLogger(__name__)


@dataclass
class ContainerPassResult:
    started: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    stopped: list[int] = field(default_factory=list)
    cleaned: list[tuple[int, int]] = field(default_factory=list)


def _conf() -> dict[str, Any]:
    conf: dict[str, Any] = settings.ROTA_CONTAINERS
    return conf


def base_url(owner: str, name: str) -> str:
    return f"/containers/{owner}/{name}/"


def build_spec(c: Container, *, kubernetes: bool = False) -> ContainerSpec:
    """The backend's view of the container's current run (from the spec frozen at placement).

    On Kubernetes the pod runs as the owner's POSIX identity by the job pods' rule
    (``apps.launcher.pods.run_as``: the account an admin mapped, else a uid derived from the
    user's id, never root) with ``$HOME`` at ``ROTA_K8S_HOME`` (else ``/home/<user>``). The
    admins' pod settings of the container's node group and environment (tolerations, classes,
    annotations, extended resources, host network, memlock, variables) apply as for jobs, read at
    each start. Locally it is a process tree in the workspace, with the settings' variables."""
    spec = c.started_spec or {}
    owner = c.owner
    custom = pod_customisation(node_group=c.node_group, environment=c.environment)
    if kubernetes:
        identity = run_as(owner, host_lookup=False)
        uid, gid, mapped = identity.uid, identity.gid, identity.mapped
        home = pod_home(owner.username, default=f"/home/{owner.username}")
    else:
        uid, gid, mapped = owner.posix_uid or 1000, owner.posix_gid, owner.posix_uid is not None
        home = str(Path(_conf()["WORKSPACE_ROOT"]) / owner.username)
    node_ports = {s.name: s.node_port for s in c.services.all() if s.node_port}
    if c.ssh_node_port:
        node_ports["ssh"] = c.ssh_node_port
    mounts = tuple(
        MountSpec(kind=m.kind, source=m.source, container_path=m.container_path, read_only=m.read_only)
        for m in mounts_for(user=owner, task={"task_type": "jupyter", "nb_name": c.name})
    )
    return ContainerSpec(
        container_id=c.pk,
        run=c.run,
        owner=owner.username,
        name=c.name,
        node=c.node.name if c.node else "",
        base_url=base_url(owner.username, c.name),
        token=container_token(c.pk, c.run),
        workspace=home,
        image=str(spec.get("image") or ""),
        cpu=int(spec.get("cpu") or c.cpu),
        memory_bytes=int(spec.get("memory_gib") or c.memory_gib) * 2**30,
        gpus=int(spec.get("gpus") or 0),
        services=tuple(
            ServiceSpec(rank=s.rank, name=s.name, protocol=s.protocol, port=s.port, command=s.command)
            for s in service_slots(spec)
        ),
        startup_script=str(spec.get("startup_script") or ""),
        env=custom.env,
        mounts=mounts,
        uid=uid,
        gid=gid,
        uid_mapped=mapped,
        capabilities=custom.capabilities,
        node_ports=node_ports,
        pod=custom.options,
    )


def jupyter_answers(address: str, spec: ContainerSpec, timeout: float = 1.0) -> bool:
    """JupyterLab's status API answers with the run's token (so it is this run's server)."""
    try:
        response = httpx.get(
            f"http://{address}{spec.base_url}api/status",
            headers={"Authorization": f"token {spec.token}"},
            timeout=timeout,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _states(observed: dict) -> dict[str, dict[str, str]]:
    return {name: {"phase": str(o.phase), "message": o.message[:300]} for name, o in sorted(observed.items())}


def _record_states(c: Container, states: dict[str, dict[str, str]], endpoints: dict[str, str] | None = None) -> None:
    updates: dict[str, object] = {}
    if states != c.service_states:
        updates["service_states"] = states
    if endpoints is not None and endpoints != c.endpoints:
        updates["endpoints"] = endpoints
    if updates:
        Container.objects.filter(pk=c.pk, run=c.run).update(**updates)


_last_activity_check: dict[int, float] = {}  # container id → monotonic time of the last read (a throttle only)


def jupyter_last_activity(address: str, spec: ContainerSpec, timeout: float = 1.0) -> datetime | None:
    """JupyterLab's own activity API: the newest activity of its kernels, terminals and API."""
    try:
        response = httpx.get(
            f"http://{address}{spec.base_url}api/status",
            headers={"Authorization": f"token {spec.token}"},
            timeout=timeout,
        )
        value = response.json().get("last_activity") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return parse_datetime(value) if isinstance(value, str) else None


def _check_activity(backend: ContainerBackend, c: Container, spec: ContainerSpec, address: str | None) -> None:
    """Every ``IDLE_CHECK_SECONDS``: JupyterLab's last activity and, with GPUs, the backend's
    reading of their utilisation (None when it cannot measure: recorded as busy)."""
    interval = float(_conf()["IDLE_CHECK_SECONDS"])
    now = time.monotonic()
    if not address or now - _last_activity_check.get(c.pk, -1e9) < interval:
        return
    _last_activity_check[c.pk] = now
    last = jupyter_last_activity(address, spec)
    if last is not None:
        container_services.container_record_activity(container_id=c.pk, run=c.run, last_activity=last)
    if spec.gpus > 0:
        percent = backend.gpu_utilisation(c.pk, c.run)
        container_services.container_record_gpu_utilisation(
            container_id=c.pk, run=c.run, percent=percent, at=timezone.now()
        )


_last_reclaim = [-1e9]


def reconcile_containers(backend: ContainerBackend | None = None) -> ContainerPassResult:
    backend = backend or get_container_backend()
    result = ContainerPassResult()
    timeout = float(_conf()["START_TIMEOUT_SECONDS"])
    rows = list(
        Container.objects.filter(status__in=ON_NODE)
        .select_related("owner", "node", "node_group", "environment")
        .prefetch_related("services")
        .order_by("pk")
    )
    claimed = {(c.pk, c.run) for c in rows}
    for c in rows:
        try:
            _reconcile_one(backend, c, result, timeout)
        except Exception:
            logger.exception("container %s: reconcile failed; retrying next pass", c.pk)
    if time.monotonic() - _last_reclaim[0] >= float(_conf()["IDLE_CHECK_SECONDS"]):
        _last_reclaim[0] = time.monotonic()
        try:
            container_services.containers_reclaim_idle()
        except Exception:
            logger.exception("idle reclaim failed; retrying next time")
    for container_id, run in sorted(backend.known_runs() - claimed):
        try:
            backend.stop(container_id, run)
            backend.release(container_id, run)
            result.cleaned.append((container_id, run))
        except Exception as exc:  # still ending: the next pass releases it
            logger.debug("container %s run %s not released yet: %s", container_id, run, exc)
    return result


def _fail_start(backend: ContainerBackend, c: Container, result: ContainerPassResult, message: str) -> None:
    backend.stop(c.pk, c.run)
    if container_services.container_observed(
        container_id=c.pk, run=c.run, status=ContainerStatus.FAILED, message=message, stop_reason=StopReason.FAILED
    ):
        result.failed[c.pk] = message


def _reconcile_one(backend: ContainerBackend, c: Container, result: ContainerPassResult, timeout: float) -> None:
    node_lost = c.node is None or c.node.state in (NodeState.NOT_READY, NodeState.DISABLED)
    if c.status == ContainerStatus.STOPPING:
        backend.stop(c.pk, c.run)
        observed = backend.observe(c.pk, c.run)
        if all(o.phase.is_final for o in observed.values()):
            try:
                backend.release(c.pk, c.run)
            except Exception:
                return  # something is still ending; next pass
            message = (
                "" if c.stop_reason in (StopReason.USER, StopReason.RESTART, StopReason.ADMIN) else c.status_message
            )
            if container_services.container_observed(
                container_id=c.pk, run=c.run, status=ContainerStatus.STOPPED, message=message
            ):
                result.stopped.append(c.pk)
        return
    if node_lost:
        backend.stop(c.pk, c.run)
        container_services.container_observed(
            container_id=c.pk,
            run=c.run,
            status=ContainerStatus.STOPPING,
            message=gettext_noop("Its node became unavailable."),
            stop_reason=StopReason.NODE_LOST,
        )
        return
    kubernetes = backend.name == "kubernetes"
    if c.status == ContainerStatus.STARTING and (kubernetes or (c.ssh and not c.ssh_node_port)):
        try:
            if kubernetes:
                container_services.container_assign_node_ports(container_id=c.pk)
            else:  # the local backend's sshd gets a port of the machine for this run
                container_services.container_assign_ssh_port(
                    container_id=c.pk, usable=getattr(backend, "ssh_port_usable", None)
                )
        except ApplicationError as exc:
            _fail_start(backend, c, result, exc.message)
            return
        c = (
            Container.objects.select_related("owner", "node", "node_group", "environment")
            .prefetch_related("services")
            .get(pk=c.pk)
        )
    spec = build_spec(c, kubernetes=kubernetes)
    if c.status == ContainerStatus.STARTING:
        try:
            backend.start(spec)
        except ValueError as exc:  # the spec cannot run there (no image, uid): say so on the container
            _fail_start(backend, c, result, str(exc))
            return
        result.started.append(c.pk)
    observed = backend.observe(c.pk, c.run)
    jupyter = observed.get("jupyter")
    # A JupyterLab the owner asked to restart ends on the way; the restart below starts it again.
    restarting = c.status == ContainerStatus.RUNNING and "jupyter" in c.restart_services
    if jupyter is not None and jupyter.phase.is_final and not restarting:
        backend.stop(c.pk, c.run)
        why = jupyter.message or f"exit code {jupyter.exit_code}"
        message = f"JupyterLab ended: {why}. See the jupyter log."
        _record_states(c, _states(observed))
        if container_services.container_observed(
            container_id=c.pk, run=c.run, status=ContainerStatus.FAILED, message=message, stop_reason=StopReason.FAILED
        ):
            result.failed[c.pk] = message
        return
    if c.status == ContainerStatus.STARTING:
        endpoints = backend.endpoints(c.pk, c.run)
        address = endpoints.get("jupyter")
        if jupyter is not None and jupyter.phase == RankPhase.RUNNING and address and jupyter_answers(address, spec):
            _record_states(c, _states(observed), endpoints)
            if container_services.container_observed(container_id=c.pk, run=c.run, status=ContainerStatus.RUNNING):
                result.running.append(c.pk)
            return
        started = c.started_at or timezone.now()
        if (timezone.now() - started).total_seconds() > timeout:
            backend.stop(c.pk, c.run)
            message = f"JupyterLab did not answer within {timeout:.0f} s. See the jupyter log."
            if jupyter is not None and jupyter.message:
                message += f" Last state: {jupyter.message}"
            if container_services.container_observed(
                container_id=c.pk,
                run=c.run,
                status=ContainerStatus.FAILED,
                message=message,
                stop_reason=StopReason.FAILED,
            ):
                result.failed[c.pk] = message
        _record_states(c, _states(observed))
        return
    # running
    if c.restart_services:
        restarted = []
        for name in c.restart_services:
            # One step each pass (TERM, then KILL after the grace, then start): never a wait here.
            if backend.restart_service(spec, name):
                restarted.append(name)
                logger.info("container %s: restarted service %s", c.pk, name)
        if restarted:
            container_services.container_services_restarted(container_id=c.pk, names=restarted)
        observed = backend.observe(c.pk, c.run)
    endpoints = backend.endpoints(c.pk, c.run)
    _record_states(c, _states(observed), endpoints)
    _check_activity(backend, c, spec, endpoints.get("jupyter"))
