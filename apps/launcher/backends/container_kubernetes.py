"""The Kubernetes container backend: a development container's run is a Pod and its Services.

The objects are built by ``kubernetes.container_manifests`` (read its docstring for what a run
looks like). This module drives them with the job backend's plumbing and conventions: the same
``ApiClient`` (bounded pool), JSON calls through ``kubernetes.api`` (``ApiCalls``), and the same
informer and log-follower wiring (``kubernetes.watching.PodWatching``): an ``Informer`` (list +
watch, relisted every ``relist_interval``) over the pods labelled ``rota.dev/container-run``, and
``LogFollower`` threads writing each service's container log into the container log store through
the launcher's fenced ``LogJournal`` (exactly once across restarts). Its own: the stop reason
written as an annotation on the run's Service before the pod is deleted, tombstones for pods that
vanished, what a pod means per service.

Restart safety: every name is derived from (container id, run), creates answer 409 when the object
exists, and a new process rebuilds its view from a list, so a portal restarted mid-start neither
loses a run nor starts one twice. What a pod's phase and container states mean for each service:
``service_observations``.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Sequence

from kubernetes import client

from apps.launcher.backends.base import LogJournal, RankPhase
from apps.launcher.backends.container_base import ContainerBackend, ContainerSpec, ServiceObservation, run_key
from apps.launcher.backends.kubernetes.api import ApiCalls
from apps.launcher.backends.kubernetes.container_ingress import IngressConfig, build_ingress, ingress_name
from apps.launcher.backends.kubernetes.container_manifests import (
    ContainerManifests,
    decode_services,
    run_name,
    tcp_service_name,
    token_secret_name,
)
from apps.launcher.backends.kubernetes.gpu_metrics import PrometheusGpuMetrics
from apps.launcher.backends.kubernetes.informer import Informer
from apps.launcher.backends.kubernetes.manifests import JsonDict
from apps.launcher.backends.kubernetes.status import FINAL_POD_PHASES, STUCK_WAITING_REASONS, _disruption
from apps.launcher.backends.kubernetes.watching import PodWatching

log = logging.getLogger(__name__)

_RELEASED_MEMORY = 10_000


def _reason(reason: object, message: object) -> str:
    text = ": ".join(str(part) for part in (reason, message) if part)
    return text[:300]


def service_observations(
    pod: JsonDict, *, stop_reason_annotation: str, services_annotation: str
) -> dict[str, ServiceObservation]:
    """One pod as per-service observations (a service = the container of the same name).

    Pending → PENDING with the scheduler's or the kubelet's reason; a container running → RUNNING;
    a container that ended → SUCCEEDED/FAILED (exit code), or KILLED when Rota stopped the run
    (stop-reason annotation); an image that can never be pulled → FAILED; a pod the cluster evicts
    or an operator deletes → its services KILLED with the cluster's reason once it has ended."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    stop_reason = (meta.get("annotations") or {}).get(stop_reason_annotation)
    names = [name for name, _, _ in decode_services((meta.get("annotations") or {}).get(services_annotation, ""))]
    if not names:
        names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name")]
    statuses = {str(s.get("name")): s for s in status.get("containerStatuses") or [] if isinstance(s, dict)}
    disruption = "" if stop_reason else _disruption(meta, status)
    result: dict[str, ServiceObservation] = {}
    for name in names:
        state = (statuses.get(name) or {}).get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting") or {}
        if terminated:
            code = terminated.get("exitCode")
            exit_code = int(code) if isinstance(code, int) else None
            if stop_reason or disruption:
                why = f"ended after {stop_reason}" if stop_reason else disruption
                obs = ServiceObservation(name, RankPhase.KILLED, why, exit_code)
            elif exit_code == 0:
                obs = ServiceObservation(name, RankPhase.SUCCEEDED, "", 0)
            else:
                why = _reason(terminated.get("reason") or "Error", terminated.get("message"))
                obs = ServiceObservation(name, RankPhase.FAILED, why, exit_code)
        elif phase in FINAL_POD_PHASES:  # ended without this container ever running
            why = disruption or _reason(status.get("reason") or phase, status.get("message"))
            obs = ServiceObservation(name, RankPhase.KILLED if stop_reason or disruption else RankPhase.FAILED, why)
        elif "running" in state:
            message = disruption or ("terminating" if meta.get("deletionTimestamp") else "")
            if phase == "Unknown":
                message = "pod phase Unknown: node not reporting"
            obs = ServiceObservation(name, RankPhase.RUNNING, message)
        elif waiting.get("reason") in STUCK_WAITING_REASONS and waiting.get("reason") not in (
            "ErrImagePull",
            "ImagePullBackOff",
        ):
            obs = ServiceObservation(name, RankPhase.FAILED, _reason(waiting.get("reason"), waiting.get("message")))
        else:
            obs = ServiceObservation(name, RankPhase.PENDING, _pending(status, waiting))
        result[name] = obs
    return result


def _pending(status: JsonDict, waiting: JsonDict) -> str:
    if waiting.get("reason"):
        return _reason(waiting.get("reason"), waiting.get("message"))
    for condition in status.get("conditions") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
        ):
            return _reason(condition.get("reason") or "Unschedulable", condition.get("message"))
    return _reason(status.get("reason"), status.get("message"))


class KubernetesContainerBackend(PodWatching, ContainerBackend, ApiCalls):
    """Development containers as pods in ``namespace`` (see the module docstring)."""

    name = "kubernetes"

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace: str,
        image_pull_secrets: Sequence[str] = (),
        log_journal: LogJournal | None = None,
        owner_label_prefix: str = "rota.dev",
        default_image: str = "",
        stop_grace_seconds: int = 10,
        relist_interval: float = 30.0,
        request_timeout: float = 30.0,
        ingress: IngressConfig | None = None,
        gpu_metrics: PrometheusGpuMetrics | None = None,
    ) -> None:
        if relist_interval <= 0:
            raise ValueError("relist_interval must be > 0")
        self._core = client.CoreV1Api(api_client)
        self._networking = client.NetworkingV1Api(api_client)
        self._ingress = ingress  # None: HTTP services are reached through the portal's proxy only
        self._gpu_metrics = gpu_metrics  # None: GPU utilisation unknown (never idle by GPU)
        self._namespace = namespace
        self._log_journal = log_journal
        self._stop_grace = max(0, int(stop_grace_seconds))
        self._relist_interval = relist_interval
        self._request_timeout = request_timeout
        self.manifests = ContainerManifests(
            namespace=namespace,
            image_pull_secrets=image_pull_secrets,
            owner_label_prefix=owner_label_prefix,
            termination_grace_seconds=self._stop_grace,
            default_image=default_image,
        )
        self.label_run = self.manifests.label_run
        self._init_watching()
        self._pods: dict[int, JsonDict] = {}  # run key → the newest pod object seen
        self._seen_at: dict[int, float] = {}
        self._tombstones: dict[int, dict[str, ServiceObservation]] = {}
        self._stopped: set[int] = set()
        self._released: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._services_listed: tuple[float, set[int]] | None = None
        self._informer: Informer | None = None

    # -- API helpers ---------------------------------------------------------------------------------

    def _key_of(self, obj: JsonDict) -> int | None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        try:
            return int(labels[self.label_run])
        except (KeyError, TypeError, ValueError):
            return None

    def _synced(self) -> bool:
        return self._serving(self._informer)

    def _pod(self, key: int) -> JsonDict | None:
        """The run's pod: from the informer's cache, or read (before the first list completes)."""
        if not self._synced():
            pod = self._ignore_404(self._core.read_namespaced_pod, run_name(key), self._namespace)
            with self._lock:
                if pod is not None:
                    self._upsert_locked(pod, time.monotonic())
                elif key in self._pods:
                    self._forget_locked(key, self._pods[key])
        with self._lock:
            return self._pods.get(key)

    def _observe(self, pod: JsonDict) -> dict[str, ServiceObservation]:
        return service_observations(
            pod,
            stop_reason_annotation=self.manifests.annotation_stop_reason,
            services_annotation=self.manifests.annotation_services,
        )

    # -- ContainerBackend ------------------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> None:
        self.manifests.validate(spec)
        key = spec.key
        with self._lock:
            if key in self._released or key in self._stopped:
                return
        service = self._create(self._core.create_namespaced_service, self.manifests.build_service(spec))
        if service is None:
            service = self._request(self._core.read_namespaced_service, run_name(key), self._namespace)
        meta = service.get("metadata") or {}
        if (meta.get("annotations") or {}).get(self.manifests.annotation_stop_reason):
            with self._lock:
                self._stopped.add(key)
            return  # stopped by an earlier process: never start it again
        owner_uid = str(meta.get("uid") or "")
        if not owner_uid:
            raise RuntimeError(f"service {run_name(key)} has no uid; cannot own the run's objects")
        self._create(self._core.create_namespaced_secret, self.manifests.build_secret(spec, owner_uid))
        tcp = self.manifests.build_tcp_service(spec, owner_uid)
        if tcp is not None:
            self._create(self._core.create_namespaced_service, tcp)
        if self._ingress is not None:
            ingress = build_ingress(
                spec,
                config=self._ingress,
                namespace=self._namespace,
                labels=self.manifests.labels(spec),
                owner_uid=owner_uid,
            )
            if ingress is not None:
                self._create(self._networking.create_namespaced_ingress, ingress)
        with self._lock:
            if key in self._pods or key in self._tombstones:
                return  # seen before: never create the pod twice
        created = self._create(self._core.create_namespaced_pod, self.manifests.build_pod(spec, owner_uid))
        if created is not None:
            with self._lock:
                self._upsert_locked(created, time.monotonic())

    def observe(self, container_id: int, run: int) -> dict[str, ServiceObservation]:
        key = run_key(container_id, run)
        with self._lock:
            if key in self._released:
                return {}
        pod = self._pod(key)
        if pod is not None:
            return self._observe(pod)
        with self._lock:
            tombstone = self._tombstones.get(key)
        if tombstone is not None:
            return dict(tombstone)
        # No pod: a run never started has no Service either; one that has a Service lost its pod.
        if self._ignore_404(self._core.read_namespaced_service, run_name(key), self._namespace) is None:
            return {}
        return {"jupyter": ServiceObservation("jupyter", RankPhase.MISSING, "pod not found")}

    def endpoints(self, container_id: int, run: int) -> dict[str, str]:
        """The pod's IP and each HTTP service's port, once the pod runs (the portal's proxy and the
        reconcile's JupyterLab checks go straight to the pod)."""
        pod = self._pod(run_key(container_id, run))
        if pod is None:
            return {}
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if status.get("phase") != "Running" or not ip:
            return {}
        annotation = ((pod.get("metadata") or {}).get("annotations") or {}).get(self.manifests.annotation_services, "")
        host = f"[{ip}]" if ":" in str(ip) else str(ip)
        return {name: f"{host}:{port}" for name, protocol, port in decode_services(annotation) if protocol == "http"}

    def gpu_utilisation(self, container_id: int, run: int) -> float | None:
        """The busiest GPU of the run's pod from Prometheus (DCGM exporter), None when unknown."""
        if self._gpu_metrics is None:
            return None
        return self._gpu_metrics.utilisation(namespace=self._namespace, pod=run_name(run_key(container_id, run)))

    def restart_service(self, spec: ContainerSpec, service: str) -> bool:
        """Bump the service's restart annotation; its wrapper restarts it inside the container
        (TERM, the grace, KILL: ``SERVICE_WRAPPER``), so the restart is handed over at once."""
        if service not in {s.name for s in spec.services}:
            return True
        patch = {"metadata": {"annotations": {self.manifests.restart_annotation(service): str(time.time_ns())}}}
        patched = self._ignore_404(self._core.patch_namespaced_pod, run_name(spec.key), self._namespace, patch)
        if patched is not None:
            with self._lock:
                self._upsert_locked(patched, time.monotonic())
        return True

    def stop(self, container_id: int, run: int) -> None:
        key = run_key(container_id, run)
        with self._lock:
            if key in self._released:
                return
            self._stopped.add(key)
        reason = {"metadata": {"annotations": {self.manifests.annotation_stop_reason: "stop"}}}
        self._ignore_404(self._core.patch_namespaced_service, run_name(key), self._namespace, reason)
        if self._ingress is not None:  # no more routing to a stopping run
            self._ignore_404(self._networking.delete_namespaced_ingress, ingress_name(key), self._namespace)
        pod = self._pod(key)
        if pod is None:
            return
        meta = pod.get("metadata") or {}
        if (pod.get("status") or {}).get("phase") in FINAL_POD_PHASES:
            return
        if (meta.get("annotations") or {}).get(self.manifests.annotation_stop_reason) != "stop":
            patched = self._ignore_404(self._core.patch_namespaced_pod, run_name(key), self._namespace, reason)
            if patched is None:
                return
            with self._lock:
                self._upsert_locked(patched, time.monotonic())
        if not meta.get("deletionTimestamp"):
            self._ignore_404(
                self._core.delete_namespaced_pod, run_name(key), self._namespace, grace_period_seconds=self._stop_grace
            )

    def release(self, container_id: int, run: int) -> None:
        key = run_key(container_id, run)
        with self._lock:
            self._released[key] = None
            while len(self._released) > _RELEASED_MEMORY:
                self._released.popitem(last=False)
            self._pods.pop(key, None)
            self._seen_at.pop(key, None)
            self._tombstones.pop(key, None)
            self._stopped.discard(key)
            followers = self._drop_followers_locked(key)
            if self._services_listed is not None:
                self._services_listed[1].discard(key)
        for follower in followers:
            follower.cancel()
        if self._ingress is not None:
            self._ignore_404(self._networking.delete_namespaced_ingress, ingress_name(key), self._namespace)
        for fn, name in (
            (self._core.delete_namespaced_service, tcp_service_name(key)),
            (self._core.delete_namespaced_secret, token_secret_name(key)),
            (self._core.delete_namespaced_pod, run_name(key)),
        ):
            self._ignore_404(fn, name, self._namespace)
        self._ignore_404(
            self._core.delete_namespaced_service, run_name(key), self._namespace, propagation_policy="Background"
        )

    def known_runs(self) -> set[tuple[int, int]]:
        """Runs with a pod or a Service (Services listed at most once per ``relist_interval`` while
        the informer runs; a Service without a pod only lingers after a failed start)."""
        if not self._synced():
            keys: set[int] = set()
            for fn in (self._core.list_namespaced_service, self._core.list_namespaced_pod):
                data = self._request(fn, self._namespace, label_selector=self.label_run)
                keys |= {k for k in (self._key_of(o) for o in data.get("items") or []) if k is not None}
        else:
            with self._lock:
                keys = set(self._pods) | set(self._tombstones)
            keys |= self._service_keys()
        with self._lock:
            keys -= set(self._released)
        return {divmod(k, 1_000_000) for k in keys}  # type: ignore[misc]

    def _service_keys(self) -> set[int]:
        now = time.monotonic()
        with self._lock:
            listed = self._services_listed
        if listed is None or now - listed[0] >= self._relist_interval:
            data = self._request(self._core.list_namespaced_service, self._namespace, label_selector=self.label_run)
            keys = {k for k in (self._key_of(o) for o in data.get("items") or []) if k is not None}
            with self._lock:
                self._services_listed = listed = (now, keys)
        return set(listed[1])

    def close(self) -> None:
        super().close()
        if self._gpu_metrics is not None:
            self._gpu_metrics.close()

    # -- watching ---------------------------------------------------------------------------------------

    def start_watching(self) -> None:
        """Start the pod informer (idempotent)."""
        with self._lock:
            if not self._begin_watching():
                return
            self._informer = self._new_informer(
                name="container-pods",
                list_call=functools.partial(
                    self._core.list_namespaced_pod, self._namespace, label_selector=self.label_run
                ),
                select=lambda obj: self._key_of(obj) is not None,
                on_replace=self._replace,
                on_event=self._on_event,
            )
            self._informer.start()

    def wait_synced(self, timeout: float) -> bool:
        informer = self._informer
        return informer is not None and informer.synced.wait(timeout)

    def _replace(self, pods: list[JsonDict], started: float) -> None:
        """A (re)list: pods not in it, last seen before the list was sent, are gone."""
        with self._lock:
            listed = {k: pod for pod in pods if (k := self._key_of(pod)) is not None}
            for key in list(self._pods):
                if key not in listed and self._seen_at.get(key, 0.0) < started:
                    self._forget_locked(key, self._pods[key])
            for key, pod in listed.items():
                if self._seen_at.get(key, -1.0) < started:
                    self._upsert_locked(pod, started)

    def _on_event(self, kind: str, pod: JsonDict) -> None:
        key = self._key_of(pod)
        if key is None:
            return
        with self._lock:
            if kind == "DELETED":
                self._forget_locked(key, pod)
            else:
                self._upsert_locked(pod, time.monotonic())

    def _upsert_locked(self, pod: JsonDict, seen_at: float) -> None:
        key = self._key_of(pod)
        if key is None or key in self._released:
            return
        self._pods[key] = pod
        self._seen_at[key] = seen_at
        self._tombstones.pop(key, None)
        self._maybe_follow_logs_locked(key, pod)

    def _forget_locked(self, key: int, last: JsonDict) -> None:
        """The pod is gone: keep what it last said (ended services keep their outcome; the others
        were killed by Rota, or lost when Rota did not stop them) until ``release``."""
        self._pods.pop(key, None)
        self._seen_at.pop(key, None)
        if key in self._released:
            return
        stopped = key in self._stopped or bool(
            ((last.get("metadata") or {}).get("annotations") or {}).get(self.manifests.annotation_stop_reason)
        )
        tombstone: dict[str, ServiceObservation] = {}
        for name, obs in self._observe(last).items():
            if obs.phase.is_final:
                tombstone[name] = obs
            elif stopped:
                tombstone[name] = ServiceObservation(name, RankPhase.KILLED, "pod deleted by the platform (stop)")
            else:
                tombstone[name] = ServiceObservation(name, RankPhase.MISSING, "pod deleted, not by Rota")
        self._tombstones[key] = tombstone

    # -- logs ---------------------------------------------------------------------------------------------

    def _maybe_follow_logs_locked(self, key: int, pod: JsonDict) -> None:
        """Follow each service's container log (log index = the service's rank) once it ran."""
        meta = pod.get("metadata") or {}
        statuses = {str(s.get("name")): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        services = decode_services((meta.get("annotations") or {}).get(self.manifests.annotation_services, ""))
        for rank, (name, _, _) in enumerate(services):
            if (key, rank) in self._followers:
                continue
            container = statuses.get(name) or {}
            state = container.get("state") or {}
            if (
                state.get("running")
                or (state.get("terminated") or {}).get("containerID")
                or container.get("containerID")
            ):
                self._follow_locked((key, rank), str(meta.get("name") or run_name(key)), name)

    def _pod_finished(self, key: tuple[int, int], name: str) -> bool:
        """Has the service's container (or its whole pod) ended? (a log follower asks at its end)"""
        with self._lock:
            pod = self._pods.get(key[0])
        if pod is None:
            return True
        if (pod.get("status") or {}).get("phase") in FINAL_POD_PHASES:
            return True
        services = decode_services(
            ((pod.get("metadata") or {}).get("annotations") or {}).get(self.manifests.annotation_services, "")
        )
        if key[1] >= len(services):
            return True
        service = services[key[1]][0]
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == service:
                return bool((status.get("state") or {}).get("terminated"))
        return False


__all__ = ["KubernetesContainerBackend", "service_observations"]
