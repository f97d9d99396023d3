"""The Kubernetes backend: starts, signals, observes and releases attempts (docs/kubernetes.md).

Plain Python and the official ``kubernetes`` client, no Django: the launcher builds a
``kubernetes.client.ApiClient`` from settings and hands it in. Objects come from ``manifests``,
observations from ``status``, the caches from two ``informer`` threads, logs from ``logs``.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from apps.launcher.backends.base import (
    Backend,
    LaunchSpec,
    LogJournal,
    LogSink,
    NodeObservation,
    RankObservation,
    RankPhase,
)
from apps.launcher.backends.kubernetes.api import ApiCalls
from apps.launcher.backends.kubernetes.informer import Informer
from apps.launcher.backends.kubernetes.manifests import (
    CONTAINER_NAME,
    DEFAULT_SECRET_ENV_PATTERN,
    JsonDict,
    Manifests,
    secret_name,
    service_name,
)
from apps.launcher.backends.kubernetes.status import FINAL_POD_PHASES, container_ran, observe_node, observe_pod
from apps.launcher.backends.kubernetes.watching import PodWatching
from apps.logs.store import LogStamp

log = logging.getLogger(__name__)

_RELEASED_MEMORY = 100_000  # how many released attempt ids are remembered (events for them ignored)


@dataclass
class _Seen:
    obj: JsonDict
    seen_at: float  # time.monotonic() when this version was stored


class KubernetesBackend(PodWatching, Backend, ApiCalls):
    """One Pod per rank in ``namespace``; the whole design is in docs/kubernetes.md."""

    name = "kubernetes"

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace: str,
        image_pull_secrets: Sequence[str] = (),
        log_sink: LogSink | None = None,
        log_journal: LogJournal | None = None,
        master_port: int = 29500,
        owner_label_prefix: str = "rota.dev",
        suspend_grace_seconds: int = 60,
        relist_interval: float = 30.0,
        request_timeout: float = 30.0,
        secret_env_pattern: str | None = DEFAULT_SECRET_ENV_PATTERN,
    ) -> None:
        if suspend_grace_seconds < 0:
            raise ValueError("suspend_grace_seconds must be >= 0")
        if relist_interval <= 0:
            raise ValueError("relist_interval must be > 0")
        self._core = client.CoreV1Api(api_client)
        self._namespace = namespace
        if log_sink is not None and log_journal is not None:
            raise ValueError("give a log_sink or a log_journal, not both")
        self._log_sink = log_sink
        self._log_journal = log_journal
        self._suspend_grace = suspend_grace_seconds
        self._relist_interval = relist_interval
        self._request_timeout = request_timeout
        self.manifests = Manifests(
            namespace=namespace,
            image_pull_secrets=image_pull_secrets,
            master_port=master_port,
            owner_label_prefix=owner_label_prefix,
            termination_grace_seconds=suspend_grace_seconds,
            secret_env_pattern=secret_env_pattern,
        )
        self.label_attempt = self.manifests.label_attempt
        self.label_rank = self.manifests.label_rank
        self.annotation_stop_reason = self.manifests.annotation_stop_reason

        self._init_watching()
        self._pods: dict[tuple[int, int], _Seen] = {}
        self._tombstones: dict[tuple[int, int], RankObservation] = {}
        self._stop_reasons: dict[int, str] = {}
        self._released: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._last_output: dict[int, float] = {}
        self._nodes: dict[str, JsonDict] = {}
        self._services_listed: tuple[float, set[int]] | None = None  # (when, attempts with a Service)
        self._pod_informer: Informer | None = None
        self._node_informer: Informer | None = None

    # ----------------------------------------------------------------------------------------------
    # API helpers

    def _pod_key(self, pod: JsonDict) -> tuple[int, int] | None:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        try:
            return int(labels[self.label_attempt]), int(labels[self.label_rank])
        except (KeyError, TypeError, ValueError):
            return None

    def _attempt_of(self, obj: JsonDict) -> int | None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        try:
            return int(labels[self.label_attempt])
        except (KeyError, TypeError, ValueError):
            return None

    def _list(self, fn: Callable[..., Any], *args: Any, selector: str) -> list[JsonDict]:
        data = self._request(fn, *args, label_selector=selector)
        return [item for item in data.get("items") or [] if isinstance(item, dict)]

    def _list_attempt_pods(self, attempt_id: int) -> list[JsonDict]:
        pods = self._list(
            self._core.list_namespaced_pod, self._namespace, selector=f"{self.label_attempt}={attempt_id}"
        )
        return [pod for pod in pods if (key := self._pod_key(pod)) is not None and key[0] == attempt_id]

    # ----------------------------------------------------------------------------------------------
    # Backend interface

    def start(self, spec: LaunchSpec) -> None:
        self.manifests.validate(spec)
        attempt_id = spec.attempt_id
        with self._lock:
            if attempt_id in self._released or attempt_id in self._stop_reasons:
                log.info("not starting attempt %s: it was released or stopped", attempt_id)
                return
        service = self._ensure_service(spec)
        meta = service.get("metadata") or {}
        stop_reason = (meta.get("annotations") or {}).get(self.annotation_stop_reason)
        if stop_reason:
            with self._lock:
                self._stop_reasons.setdefault(attempt_id, stop_reason)
            log.info("not starting attempt %s: its service says %s", attempt_id, stop_reason)
            return
        owner_uid = meta.get("uid")
        if not owner_uid:
            raise RuntimeError(f"service {service_name(attempt_id)} has no uid; cannot own the pods")
        secret = self.manifests.build_secret(spec, owner_uid)
        if secret is not None:
            self._create(self._core.create_namespaced_secret, secret)
        for rank in spec.ranks:
            key = (attempt_id, rank.rank)
            with self._lock:
                if key in self._pods or key in self._tombstones:
                    continue  # seen before: never create a rank twice
            created = self._create(self._core.create_namespaced_pod, self.manifests.build_pod(spec, rank, owner_uid))
            if created is not None:
                with self._lock:
                    self._upsert_pod_locked(created, time.monotonic())

    def _ensure_service(self, spec: LaunchSpec) -> JsonDict:
        created = self._create(self._core.create_namespaced_service, self.manifests.build_service(spec))
        if created is not None:
            return created
        return self._request(self._core.read_namespaced_service, service_name(spec.attempt_id), self._namespace)

    def signal_suspend(self, attempt_id: int, *, grace_seconds: int | None = None) -> None:
        """SIGTERM now, SIGKILL after ``grace_seconds`` (default: ``suspend_grace_seconds``)."""
        grace = self._suspend_grace if grace_seconds is None else int(grace_seconds)
        if grace < 0:
            raise ValueError("grace_seconds must be >= 0")
        self._terminate(attempt_id, "suspend", grace)

    def stop(self, attempt_id: int, *, reason: str = "stop") -> None:
        # Deleted at once either way; a kill that ends a suspend keeps saying "suspend".
        self._terminate(attempt_id, "suspend" if reason == "suspend" else "stop", 0)

    def _terminate(self, attempt_id: int, reason: str, grace: int) -> None:
        with self._lock:
            if attempt_id in self._released:
                return
            if self._stop_reasons.get(attempt_id) != "stop":  # a stop is never downgraded to a suspend
                self._stop_reasons[attempt_id] = reason
            reason = self._stop_reasons[attempt_id]
        patch = {"metadata": {"annotations": {self.annotation_stop_reason: reason}}}
        self._ignore_404(self._core.patch_namespaced_service, service_name(attempt_id), self._namespace, patch)
        for pod in self._list_attempt_pods(attempt_id):
            if (pod.get("status") or {}).get("phase") in FINAL_POD_PHASES:
                continue  # it ended on its own: nothing to signal, keep its real outcome
            meta = pod.get("metadata") or {}
            name = meta.get("name") or ""
            if (meta.get("annotations") or {}).get(self.annotation_stop_reason) != reason:
                patched = self._ignore_404(self._core.patch_namespaced_pod, name, self._namespace, patch)
                if patched is None:
                    continue
                with self._lock:
                    self._upsert_pod_locked(patched, time.monotonic())
            pod_grace = self._grace_for(pod, grace)
            pending_grace = meta.get("deletionGracePeriodSeconds")
            if meta.get("deletionTimestamp") and pending_grace is not None and pending_grace <= pod_grace:
                continue  # already terminating at least this fast
            self._ignore_404(self._core.delete_namespaced_pod, name, self._namespace, grace_period_seconds=pod_grace)

    def _grace_for(self, pod: JsonDict, grace: int) -> int:
        """``grace``, except that a pod on a node that is not ready but still exists is never
        force-deleted: grace 0 removes it from the API at once while its processes may still run
        on the unreachable node and write checkpoints that its next attempt then races with. It gets
        its own termination grace instead and goes when the kubelet confirms or the Node is deleted."""
        if grace > 0:
            return grace
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in FINAL_POD_PHASES:
            return grace  # never bound to a node, or already ended: nothing can still run
        if self._node_ready(str(node)) is False:
            return max(1, int(spec.get("terminationGracePeriodSeconds") or self._suspend_grace or 1))
        return grace

    def _node_ready(self, name: str) -> bool | None:
        """Is the node ready? ``None`` when it no longer exists (confirmed gone)."""
        informer = self._node_informer
        if informer is not None and informer.synced.is_set() and informer.alive:
            with self._lock:
                obj = self._nodes.get(name)
        else:
            obj = self._ignore_404(self._core.read_node, name)
        return None if obj is None else observe_node(obj).ready

    def observe(self, attempt_id: int) -> dict[int, RankObservation]:
        with self._lock:
            if attempt_id in self._released:
                return {}
        if not self._pods_synced():
            started = time.monotonic()
            pods = self._list_attempt_pods(attempt_id)
            self._replace_pods(pods, started, attempt_id=attempt_id)
        with self._lock:
            result = {rank: obs for (aid, rank), obs in self._tombstones.items() if aid == attempt_id}
            for (aid, rank), seen in self._pods.items():
                if aid == attempt_id:
                    result[rank] = self._observe_pod(rank, seen.obj)
        return dict(sorted(result.items()))

    def known_attempts(self) -> set[int]:
        """Attempts with pods or a Service. With the pod informer running this costs no API call
        on most passes: pods come from its cache and Services are listed at most once per
        ``relist_interval`` (a Service without pods only lingers after a failed start)."""
        if not self._pods_synced():
            found: set[int] = set()
            for fn in (self._core.list_namespaced_service, self._core.list_namespaced_pod):
                for obj in self._list(fn, self._namespace, selector=self.label_attempt):
                    attempt_id = self._attempt_of(obj)
                    if attempt_id is not None:
                        found.add(attempt_id)
            return found
        with self._lock:
            found = {key[0] for key in self._pods} | {key[0] for key in self._tombstones}
        return found | self._service_attempts()

    def _service_attempts(self) -> set[int]:
        now = time.monotonic()
        with self._lock:
            listed = self._services_listed
        if listed is None or now - listed[0] >= self._relist_interval:
            services = self._list(self._core.list_namespaced_service, self._namespace, selector=self.label_attempt)
            ids = {a for a in (self._attempt_of(obj) for obj in services) if a is not None}
            with self._lock:
                self._services_listed = listed = (now, ids - set(self._released))
        return set(listed[1])

    def release(self, attempt_id: int) -> None:
        with self._lock:
            self._released[attempt_id] = None
            self._released.move_to_end(attempt_id)
            while len(self._released) > _RELEASED_MEMORY:
                self._released.popitem(last=False)
            for key in [key for key in self._pods if key[0] == attempt_id]:
                del self._pods[key]
            for key in [key for key in self._tombstones if key[0] == attempt_id]:
                del self._tombstones[key]
            followers = self._drop_followers_locked(attempt_id)
            self._stop_reasons.pop(attempt_id, None)
            self._last_output.pop(attempt_id, None)
            if self._services_listed is not None:
                self._services_listed[1].discard(attempt_id)
        for follower in followers:
            follower.cancel()
        self._ignore_404(
            self._core.delete_namespaced_service,
            service_name(attempt_id),
            self._namespace,
            propagation_policy="Background",
        )
        self._ignore_404(self._core.delete_namespaced_secret, secret_name(attempt_id), self._namespace)
        for pod in self._list_attempt_pods(attempt_id):
            name = (pod.get("metadata") or {}).get("name") or ""
            self._ignore_404(
                self._core.delete_namespaced_pod, name, self._namespace, grace_period_seconds=self._grace_for(pod, 0)
            )

    def nodes(self) -> list[NodeObservation]:
        if self._serving(self._node_informer):
            with self._lock:
                objs = list(self._nodes.values())
        else:
            objs = [item for item in self._request(self._core.list_node).get("items") or [] if isinstance(item, dict)]
        return sorted((observe_node(obj) for obj in objs), key=lambda node: node.name)

    def last_output_at(self, attempt_id: int) -> float | None:
        with self._lock:
            return self._last_output.get(attempt_id)

    # ----------------------------------------------------------------------------------------------
    # Watching

    def start_watching(self) -> None:
        """Start the pod and node informers (idempotent). ``close()`` stops them."""
        with self._lock:
            if not self._begin_watching():
                return
            self._pod_informer = self._new_informer(
                name="pods",
                list_call=functools.partial(
                    self._core.list_namespaced_pod, self._namespace, label_selector=self.label_attempt
                ),
                select=lambda obj: self._pod_key(obj) is not None,
                on_replace=lambda items, started: self._replace_pods(items, started),
                on_event=self._on_pod_event,
            )
            self._node_informer = self._new_informer(
                name="nodes",
                list_call=self._core.list_node,
                select=lambda obj: bool((obj.get("metadata") or {}).get("name")),
                on_replace=self._replace_nodes,
                on_event=self._on_node_event,
            )
            self._pod_informer.start()
            self._node_informer.start()

    def wait_synced(self, timeout: float) -> bool:
        """Wait until both informers completed their first list; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        for informer in (self._pod_informer, self._node_informer):
            if informer is None or not informer.synced.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def _pods_synced(self) -> bool:
        return self._serving(self._pod_informer)

    def _replace_pods(self, pods: list[JsonDict], started: float, attempt_id: int | None = None) -> None:
        """A (re)list result: pods not in it, last seen before the list was sent, are gone."""
        with self._lock:
            listed: dict[tuple[int, int], JsonDict] = {}
            for pod in pods:
                key = self._pod_key(pod)
                if key is not None and (attempt_id is None or key[0] == attempt_id):
                    listed[key] = pod
            for key, seen in list(self._pods.items()):
                if attempt_id is not None and key[0] != attempt_id:
                    continue
                if key not in listed and seen.seen_at < started:
                    self._forget_pod_locked(key, seen.obj)
            for key, pod in listed.items():
                current = self._pods.get(key)
                if current is None or current.seen_at < started:
                    self._upsert_pod_locked(pod, started)

    def _on_pod_event(self, kind: str, pod: JsonDict) -> None:
        key = self._pod_key(pod)
        if key is None:
            return
        with self._lock:
            if kind == "DELETED":
                self._pods.pop(key, None)
                if key[0] not in self._released:
                    self._forget_pod_locked(key, pod)
            else:
                self._upsert_pod_locked(pod, time.monotonic())

    def _upsert_pod_locked(self, pod: JsonDict, seen_at: float) -> None:
        key = self._pod_key(pod)
        if key is None or key[0] in self._released:
            return
        self._pods[key] = _Seen(pod, seen_at)
        self._tombstones.pop(key, None)
        self._maybe_follow_logs_locked(key, pod)

    def _forget_pod_locked(self, key: tuple[int, int], last: JsonDict) -> None:
        """The pod is gone: keep a final observation of it until ``release``."""
        self._pods.pop(key, None)
        annotated = ((last.get("metadata") or {}).get("annotations") or {}).get(self.annotation_stop_reason)
        last_phase = (last.get("status") or {}).get("phase")
        observed = self._observe_pod(key[1], last)
        if last_phase in FINAL_POD_PHASES:
            tombstone = observed  # it had ended (on its own, or KILLED when annotated) before vanishing
        else:
            reason = annotated or self._stop_reasons.get(key[0])
            tombstone = RankObservation(
                rank=key[1],
                phase=RankPhase.KILLED if reason else RankPhase.MISSING,
                node=observed.node,
                exit_code=observed.exit_code,
                started_at=observed.started_at,
                finished_at=time.time(),
                message=f"pod deleted by the platform ({reason})" if reason else "pod deleted",
            )
        self._tombstones[key] = tombstone

    def _replace_nodes(self, nodes: list[JsonDict], started: float) -> None:
        with self._lock:
            self._nodes = {node["metadata"]["name"]: node for node in nodes}

    def _on_node_event(self, kind: str, node: JsonDict) -> None:
        name = node["metadata"]["name"]
        with self._lock:
            if kind == "DELETED":
                self._nodes.pop(name, None)
            else:
                self._nodes[name] = node

    def _observe_pod(self, rank: int, pod: JsonDict) -> RankObservation:
        return observe_pod(rank, pod, stop_reason_annotation=self.annotation_stop_reason)

    # ----------------------------------------------------------------------------------------------
    # Logs

    def _maybe_follow_logs_locked(self, key: tuple[int, int], pod: JsonDict) -> None:
        status = pod.get("status") or {}
        phase = status.get("phase")
        if phase == "Running" or (phase in FINAL_POD_PHASES and container_ran(status)):
            self._follow_locked(key, (pod.get("metadata") or {}).get("name") or "", CONTAINER_NAME)

    def _has_log_sink(self) -> bool:
        return self._log_sink is not None

    def _emit_logs(self, attempt_id: int, rank: int, lines: list[tuple[LogStamp, str]]) -> bool:
        """Hand lines to the journal or the sink; ``False`` when the journal did not take them
        (refused, or failed: the follower then resumes from the journal's stored position). Lines
        taken are the attempt's last output (the hung-job watchdog)."""
        if self._log_journal is not None:
            if not self._journal_append(attempt_id, rank, lines):
                return False
        elif self._log_sink is not None:
            try:
                self._log_sink(attempt_id, rank, [text for _, text in lines])
            except Exception:
                log.exception("log sink failed for attempt %s rank %s", attempt_id, rank)
        with self._lock:
            if attempt_id not in self._released:
                self._last_output[attempt_id] = time.time()
        return True

    def _pod_finished(self, key: tuple[int, int], name: str) -> bool:
        """Is the pod final or gone? (the log follower asks once its stream has ended)"""
        if self._pods_synced():
            with self._lock:
                seen = self._pods.get(key)
            return seen is None or (seen.obj.get("status") or {}).get("phase") in FINAL_POD_PHASES
        pod = self._ignore_404(self._core.read_namespaced_pod, name, self._namespace)
        return pod is None or (pod.get("status") or {}).get("phase") in FINAL_POD_PHASES
