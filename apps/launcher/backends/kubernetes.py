"""Kubernetes execution backend: one Pod per rank, one headless Service per attempt.

Plain Python and the official ``kubernetes`` client, no Django: the launcher builds a
``kubernetes.client.ApiClient`` from settings and hands it in. Everything lives in one namespace.

Objects of attempt ``N`` (``P`` = ``owner_label_prefix``, default ``rota.dev``)
--------------------------------------------------------------------------------
* **Service** ``rota-N``: headless (``clusterIP: None``), selector ``P/attempt=N``, one TCP port
  ``master`` = ``master_port``, ``publishNotReadyAddresses: true`` so a rank's DNS record exists as
  soon as its pod has an IP (rank 1 may come up before rank 0 is Ready; without this torch's
  rendezvous would see NXDOMAIN). It is created **first** and is the owner of everything else.
* **Secret** ``rota-N-env`` (only when some env value looks like a credential, see
  ``secret_env_pattern``: ``ROTA_TASK_TOKEN``, ``MARSV2_USER_TOKEN``, ``HF_TOKEN``...): immutable,
  keys ``<rank>.<NAME>``; the pods reference it with ``valueFrom.secretKeyRef``. Tokens therefore never
  appear in the pod spec, where anyone allowed to ``get pods`` (or ``kubectl describe``) would read
  them — HAI put whole configs, DB passwords included, into ConfigMaps.
* **Pod** ``rota-N-R`` per rank R: ``hostname: rota-N-R`` + ``subdomain: rota-N`` gives the stable
  name ``rota-N-R.rota-N.<namespace>.svc``; every rank gets ``MASTER_ADDR`` = rank 0's name and
  ``MASTER_PORT``. ``restartPolicy: Never``; container ``job`` runs ``command`` (python:
  ``[interpreter, -u, entrypoint, *params]``, bash: ``[bash, entrypoint, *params]``, executable:
  ``[entrypoint, *params]``) in ``workingDir`` = workspace; env = the rank's contract env, sorted,
  plus ``MASTER_*``; volumes from the mounts (hostPath / PVC / ConfigMap, ``readOnly`` honoured) and
  an in-memory emptyDir at ``/dev/shm``; labels ``P/attempt``, ``P/chain``, ``P/rank``, ``P/user``
  plus the spec's labels (sanitised to label syntax; they can never override ours nor use the
  ``kubernetes.io``/``k8s.io`` or our own prefix); ``imagePullSecrets`` from the constructor;
  ``terminationGracePeriodSeconds`` = the default suspend grace (so even a ``kubectl delete`` or a
  node drain leaves the job its checkpoint window; our own deletes pass the grace per call).
* Resources: ``nvidia.com/gpu`` requests = limits = ``gpus_per_rank`` (extended resources need both
  equal) — exclusivity is enforced by the device plugin, not by trust as in HAI; ``memory`` requests =
  limits = ``memory_bytes``; ``cpu`` is a request only (CFS quotas throttle data loaders for nothing on
  whole nodes). GPU visibility belongs to the device plugin: ``NVIDIA_VISIBLE_DEVICES`` from the env is
  always dropped (with the NVIDIA runtime in env-var mode, ``NVIDIA_VISIBLE_DEVICES=all`` in a pod
  hands out every GPU of the host), ``CUDA_VISIBLE_DEVICES`` is dropped when GPUs are requested (host
  indices are wrong inside the container), and CPU-only pods get ``NVIDIA_VISIBLE_DEVICES=void``.

Pinning. Ranks are pinned with a required node affinity on ``metadata.name`` (``matchFields``, the
same mechanism the DaemonSet controller uses) rather than ``nodeName``. ``nodeName`` bypasses the
scheduler: the kubelet *rejects* a pod whose GPUs are still held — e.g. by the suspended attempt
still inside its grace period — and the pod ends ``Failed`` (``OutOfnvidia.com/gpu``); it also
ignores cordons and taints. Through the scheduler the new pod simply waits ``Pending`` until the
node is free. ``matchFields`` on the node *name* rather than a ``nodeSelector`` on the
``kubernetes.io/hostname`` label, because the names Rota knows (``nodes()``) are Node names, and the
hostname label differs from the name on some providers.

Ownership and garbage collection. Every Pod and the Secret carry an ``ownerReferences`` entry to the
attempt's Service (uid from the create response, or from a GET after a 409). ``release`` deletes the
Service with ``propagationPolicy=Background`` — the cluster's garbage collector then removes all
dependents — and, belt and braces, deletes the Secret and any pod left itself. ``start`` is
idempotent: a 409 on create means "already there"; it never creates a pod for a rank it has seen
before (cache or tombstone), and never creates pods for an attempt whose Service carries the
``P/stop-reason`` annotation, so a late ``start`` after ``suspend``/``stop`` (two reconcile passes
racing) cannot resurrect ranks.

Suspend and stop. Both first record the reason durably (annotation ``P/stop-reason`` =
``suspend``/``stop`` on the Service, then on every pod still running), then delete those pods with
``gracePeriodSeconds`` = grace (suspend: ``suspend_grace_seconds``, default 60, overridable per call;
stop: 0). Kubernetes sends SIGTERM, then SIGKILL after the grace. Pods already finished are left
alone. Because the reason is on the object itself, ``observe`` reports ``KILLED`` rather than
``FAILED`` (exit 143/137) for ranks the platform ended — also after a restart of this process. A
rank that exits 0 after a suspend notice is ``KILLED`` with ``exit_code`` 0 (it ended because it was
told to; the reconcile decides what a clean checkpoint exit means).

Observation: list + watch. ``start_watching()`` runs two informer threads, one for pods with label
``P/attempt`` (all attempts in the namespace), one for nodes. Each lists (recording the list's
``resourceVersion``), then watches from it (``allowWatchBookmarks``), resumes from the last
``resourceVersion`` it saw when a watch ends normally, relists at once on *410 Gone* (an
``ApiException`` with status 410 or an ``ERROR`` event with code 410), and relists every
``relist_interval`` seconds anyway, because events can be lost (a watch is opened with
``timeoutSeconds`` and a client read timeout equal to the time left, and is closed at the first
event past the deadline; worst case, events stopping just before it, about twice the interval).
A relist replaces the cache; pods absent from it become tombstones — but only pods last seen *before*
the list request was sent, so a pod ``start`` inserted during a relist is not declared lost. Other
errors back off exponentially (0.1 s .. 10 s). The informers filter by label on the client side too
(an API server — or a test double — that ignores ``labelSelector`` cannot leak foreign pods in).
Without the threads (tests, one-shot reconcile passes) ``observe`` lists that attempt's pods
directly and ``nodes`` lists nodes, so the backend also works synchronously.

Pod → RankPhase: ``Pending`` → PENDING (message: the container's waiting reason, e.g.
``ImagePullBackOff``, or the ``PodScheduled=False`` condition, e.g. ``Unschedulable: ...``);
``Running`` → RUNNING; ``Succeeded`` → SUCCEEDED (exit 0); ``Failed`` → FAILED with the container's
``exitCode`` and reason (``OOMKilled``, ``Error (SIGKILL)``...) or the pod's reason (``Evicted``);
any final phase with our stop-reason annotation → KILLED; a pod that disappeared (DELETED event or
absent from a relist) → KILLED if the platform asked it to stop (annotation or in-memory marker),
its last final state if it had already finished, otherwise MISSING.

Logs. With a ``log_sink``, a thread per running pod follows ``read_namespaced_pod_log(follow=True,
_preload_content=False, timestamps=True)`` and hands complete lines to ``log_sink(attempt, rank,
lines)`` (thread-safe sink required), stripping the kubelet's timestamp prefix so the sink receives
bare lines as the interface promises. We ask for timestamps because they make resuming exact: the
follower keeps a cursor (newest kubelet timestamp delivered, and how many lines carried exactly that
timestamp); on reconnect it asks for ``sinceSeconds`` = age of that timestamp + 30 s (the Python
client has no ``sinceTime``; the margin absorbs clock skew between us and the node), then skips
lines older than the cursor, and the first *n* lines at the cursor's timestamp, so nothing is
repeated or lost. A trailing line without a newline is delivered only once the pod has finished.
The thread ends when the stream ends and the pod is final or gone, on ``release`` and on ``close``.
Limitations: after a restart of this process, followers start from the beginning of the container
log (duplicates rather than loss; the backend does not know what the log store holds); lines longer
than the runtime's 16 KiB split get a timestamp inside them; one thread and one connection per
running pod (size ``Configuration.connection_pool_maxsize`` accordingly).

Security context (HAI ran privileged pods as cluster-admin). Pod and container: ``runAsNonRoot:
true``, ``runAsUser`` = the user's uid (uid < 1 is refused), ``seccompProfile: RuntimeDefault``;
container: ``allowPrivilegeEscalation: false``, ``privileged: false``, ``capabilities: {drop: [ALL]}``
plus, only when an admin granted some, ``add`` with those names (validated; ``ALL`` refused). Pod:
``hostNetwork``/``hostPID``/``hostIPC`` false, ``automountServiceAccountToken: false`` (jobs get no
API credentials), ``enableServiceLinks: false``. RBAC the backend needs — nothing cluster-admin:
namespaced ``pods`` (create, get, list, watch, patch, delete), ``pods/log`` (get), ``services``
(create, get, list, patch, delete), ``secrets`` (create, delete); cluster-scoped ``nodes`` (get,
list, watch).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import datetime as dt
import functools
import json
import logging
import math
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from apps.launcher.backends.base import (
    Backend,
    EntrypointKind,
    LaunchSpec,
    LogSink,
    MountSpec,
    NodeObservation,
    RankObservation,
    RankPhase,
    RankSpec,
)

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]

CONTAINER_NAME = "job"
SHM_VOLUME = "dshm"
SHM_PATH = "/dev/shm"  # noqa: S108 - the container's shared memory, not a temp file
FINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})
MOUNT_KINDS = frozenset({"host_path", "pvc", "configmap"})
DEFAULT_SECRET_ENV_PATTERN = r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY"  # noqa: S105 - a pattern of names

_BACKOFF_MIN = 0.1
_BACKOFF_MAX = 10.0
_CONNECT_TIMEOUT = 10.0
_WATCH_TIMEOUT_MAX = 300  # seconds; a watch never stays open longer than this (server side)
_LOG_READ_TIMEOUT = 300.0  # an idle log stream is reopened (with resume) after this long
_LOG_SINCE_MARGIN = 30  # seconds of clock skew tolerated when resuming a log stream
_LOG_CHUNK = 64 * 1024
_RELEASED_MEMORY = 100_000  # how many released attempt ids are remembered (events for them ignored)
_JOIN_TIMEOUT = 5.0

_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_DNS_LABEL_BAD = re.compile(r"[^a-z0-9-]+")
_CAPABILITY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SECRET_KEY_BAD = re.compile(r"[^-._A-Za-z0-9]+")
_LOG_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")
_RESERVED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io")


# --------------------------------------------------------------------------------------------------
# Names and small pure helpers


def service_name(attempt_id: int) -> str:
    return f"rota-{attempt_id}"


def pod_name(attempt_id: int, rank: int) -> str:
    return f"rota-{attempt_id}-{rank}"


def secret_name(attempt_id: int) -> str:
    return f"rota-{attempt_id}-env"


def sanitize_label_value(value: str) -> str:
    """Coerce any string into a valid label value (<= 63 chars, alphanumeric at both ends)."""
    return _LABEL_VALUE_BAD.sub("-", value)[:63].strip("-._")


def sanitize_label_key(key: str) -> str | None:
    """Coerce ``[prefix/]name`` into a valid label key; ``None`` when nothing valid is left."""
    prefix, slash, name = key.rpartition("/")
    name = sanitize_label_value(name)
    if not name:
        return None
    if not slash:
        return name
    parts = [_DNS_LABEL_BAD.sub("-", part.lower()).strip("-")[:63] for part in prefix.split(".")]
    prefix = ".".join(part for part in parts if part)[:253].strip(".-")
    return f"{prefix}/{name}" if prefix else name


def cpu_quantity(cpu: float) -> str:
    millis = round(cpu * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def normalize_capabilities(capabilities: Sequence[str]) -> list[str]:
    """``["cap_net_admin", "SYS_PTRACE"]`` → ``["NET_ADMIN", "SYS_PTRACE"]``; invalid names raise."""
    result: set[str] = set()
    for raw in capabilities:
        cap = raw.strip().upper().removeprefix("CAP_")
        if not _CAPABILITY.match(cap) or cap == "ALL":
            raise ValueError(f"invalid or refused Linux capability: {raw!r}")
        result.add(cap)
    return sorted(result)


def parse_k8s_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def parse_log_timestamp(token: str) -> tuple[int, int] | None:
    """Kubelet RFC3339Nano timestamp → ``(epoch seconds, nanoseconds)``; ``None`` if not one.

    Compared as numbers, never as strings: RFC3339Nano drops trailing zeros of the fraction.
    """
    match = _LOG_TS.match(token)
    if match is None:
        return None
    zone = "+00:00" if match[3] == "Z" else match[3]
    try:
        seconds = int(dt.datetime.fromisoformat(match[1] + zone).timestamp())
    except ValueError:
        return None
    return seconds, int((match[2] or "").ljust(9, "0"))


def _signal_name(exit_code: int | None) -> str:
    if exit_code is None or not 128 < exit_code < 160:
        return ""
    try:
        return signal.Signals(exit_code - 128).name
    except ValueError:
        return f"signal {exit_code - 128}"


class LogLineSplitter:
    """Turns a byte stream into complete lines (no newline, UTF-8 decoded leniently)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += chunk
        *complete, rest = self._buffer.split(b"\n")
        self._buffer = bytearray(rest)
        return [_decode_line(line) for line in complete]

    def flush(self) -> list[str]:
        """The trailing line without a newline, if any (call only when the stream is really over)."""
        if not self._buffer:
            return []
        line = _decode_line(self._buffer)
        self._buffer = bytearray()
        return [line]


def _decode_line(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", errors="replace").removesuffix("\r")


class LogCursor:
    """Position of a follower in a container log, by kubelet timestamp, for exact resumption.

    ``last`` is the newest timestamp delivered and ``count_at_last`` how many delivered lines carry
    exactly that timestamp. After a reconnect (``begin_stream``) lines are skipped while they are
    older than ``last`` or are among the first ``count_at_last`` lines stamped ``last``; from the
    first new line on, everything passes (a stream's timestamps are not trusted to be monotonic
    beyond the catch-up).
    """

    def __init__(self) -> None:
        self.last: tuple[int, int] | None = None
        self.count_at_last = 0
        self._catching_up = False
        self._seen_at_last = 0

    def begin_stream(self) -> None:
        self._catching_up = self.last is not None
        self._seen_at_last = 0

    def since_seconds(self, now: float) -> int | None:
        if self.last is None:
            return None
        return max(1, math.ceil(now - self.last[0]) + _LOG_SINCE_MARGIN)

    def accept(self, key: tuple[int, int] | None) -> bool:
        if key is None:  # no timestamp: cannot be placed, deliver
            return True
        if self._catching_up and self.last is not None:
            if key < self.last:
                return False
            if key == self.last and self._seen_at_last < self.count_at_last:
                self._seen_at_last += 1
                return False
            self._catching_up = False
        if key == self.last:
            self.count_at_last += 1
        else:
            self.last = key
            self.count_at_last = 1
        return True


# --------------------------------------------------------------------------------------------------
# HTTP plumbing


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


def _raise_for_status(resp: Any) -> None:
    status = getattr(resp, "status", 200)
    if isinstance(status, int) and not 200 <= status < 300:
        raise ApiException(status=status, reason=getattr(resp, "reason", None))


def _read_json(resp: Any) -> Any:
    try:
        _raise_for_status(resp)
        body = resp.data
        return json.loads(body) if body else {}
    finally:
        with contextlib.suppress(Exception):
            resp.release_conn()


def _abort(resp: Any) -> None:
    """Unblock a thread reading ``resp`` (a long-lived watch or log stream) from another thread."""
    try:
        resp.shutdown()  # urllib3 >= 2.3
    except Exception:  # fall back to the raw socket
        with contextlib.suppress(Exception):
            resp.connection.sock.shutdown(socket.SHUT_RDWR)


def _describe(exc: BaseException) -> str:
    """A log-safe description: status and reason only, never a response body (it may echo env)."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason or ''}".strip()
    return type(exc).__name__


class _Streams:
    """Open long-lived responses, so ``close`` can cut them."""

    def __init__(self, closing: threading.Event) -> None:
        self._closing = closing
        self._lock = threading.Lock()
        self._open: set[Any] = set()

    @contextlib.contextmanager
    def track(self, resp: Any) -> Iterator[Any]:
        with self._lock:
            self._open.add(resp)
        if self._closing.is_set():
            _abort(resp)
        try:
            yield resp
        finally:
            with self._lock:
                self._open.discard(resp)
            with contextlib.suppress(Exception):
                resp.close()
            with contextlib.suppress(Exception):
                resp.release_conn()

    def abort_all(self) -> None:
        with self._lock:
            responses = list(self._open)
        for resp in responses:
            _abort(resp)


class _Informer:
    """List + watch of one resource into callbacks, in a thread (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        list_call: Callable[..., Any],
        select: Callable[[JsonDict], bool],
        on_replace: Callable[[list[JsonDict], float], None],
        on_event: Callable[[str, JsonDict], None],
        relist_interval: float,
        request_timeout: float,
        closing: threading.Event,
        streams: _Streams,
    ) -> None:
        self.name = name
        self._list_call = list_call
        self._select = select
        self._on_replace = on_replace
        self._on_event = on_event
        self._relist_interval = relist_interval
        self._request_timeout = request_timeout
        self._closing = closing
        self._streams = streams
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rota-k8s-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff = _BACKOFF_MIN
        gone_streak = 0
        while not self._closing.is_set():
            try:
                resource_version = self._relist()
                deadline = time.monotonic() + self._relist_interval
                while not self._closing.is_set() and time.monotonic() < deadline:
                    resource_version, events = self._watch(resource_version, deadline)
                    if events:
                        backoff, gone_streak = _BACKOFF_MIN, 0
                    else:  # an empty watch: do not hammer a server that ends streams at once
                        self._closing.wait(min(backoff, max(0.0, deadline - time.monotonic())))
                        backoff = min(backoff * 2, _BACKOFF_MAX)
            except _Gone:
                gone_streak += 1
                log.info("%s: watch expired (410 Gone), relisting", self.name)
                if gone_streak > 1:
                    self._closing.wait(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
            except Exception as exc:  # the informer must survive anything
                if self._closing.is_set():
                    break
                log.warning("%s: list/watch failed (%s), retrying in %.1fs", self.name, _describe(exc), backoff)
                self._closing.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def _relist(self) -> str:
        started = time.monotonic()
        data = _read_json(
            self._list_call(_preload_content=False, _request_timeout=(_CONNECT_TIMEOUT, self._request_timeout))
        )
        items = [item for item in data.get("items") or [] if self._select(item)]
        self._on_replace(items, started)
        self.synced.set()
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, resource_version: str, deadline: float) -> tuple[str, int]:
        remaining = max(0.05, deadline - time.monotonic())
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": max(1, min(_WATCH_TIMEOUT_MAX, math.ceil(remaining))),
            "_preload_content": False,
            "_request_timeout": (_CONNECT_TIMEOUT, remaining),
        }
        if resource_version:
            kwargs["resource_version"] = resource_version
        try:
            resp = self._list_call(**kwargs)
        except ApiException as exc:
            if exc.status == 410:
                raise _Gone from exc
            raise
        events = 0
        with self._streams.track(resp):
            try:
                _raise_for_status(resp)
            except ApiException as exc:
                if exc.status == 410:
                    raise _Gone from exc
                raise
            try:
                for line in _iter_lines(resp):
                    if self._closing.is_set():
                        break
                    event = _parse_event(line)
                    if event is None:
                        continue
                    kind, obj = event
                    if kind == "ERROR":
                        code = obj.get("code")
                        if code == 410:
                            raise _Gone
                        raise ApiException(status=code, reason=str(obj.get("reason") or "watch error"))
                    if kind in ("ADDED", "MODIFIED", "DELETED") and self._select(obj):
                        self._on_event(kind, obj)
                    new_version = (obj.get("metadata") or {}).get("resourceVersion")
                    if new_version:
                        resource_version = str(new_version)
                    events += 1
                    if time.monotonic() >= deadline:
                        break
            except urllib3.exceptions.ReadTimeoutError:
                pass  # idle until the relist deadline: a normal end
            except (urllib3.exceptions.ProtocolError, OSError):
                if not self._closing.is_set():
                    raise
        return resource_version, events


def _iter_lines(resp: Any) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in resp.stream(amt=None, decode_content=True):
        buffer += chunk
        *lines, rest = buffer.split(b"\n")
        buffer = bytearray(rest)
        for line in lines:
            if line.strip():
                yield bytes(line)
    if buffer.strip():
        yield bytes(buffer)


def _parse_event(line: bytes) -> tuple[str, JsonDict] | None:
    try:
        event = json.loads(line)
    except ValueError:
        log.warning("ignoring a watch line that is not JSON")
        return None
    if not isinstance(event, dict):
        return None
    obj = event.get("object")
    return str(event.get("type") or ""), obj if isinstance(obj, dict) else {}


# --------------------------------------------------------------------------------------------------
# Log followers


class _LogFollower:
    def __init__(self, backend: KubernetesBackend, attempt_id: int, rank: int, pod: str) -> None:
        self.attempt_id = attempt_id
        self.rank = rank
        self.pod = pod
        self.cursor = LogCursor()
        self.delivered = 0
        self.done = threading.Event()
        self._backend = backend
        self._cancelled = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name=f"rota-k8s-logs-{pod}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()
        resp = self._resp
        if resp is not None:
            _abort(resp)

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._cancelled.is_set() or self._backend._closing.is_set()

    def _run(self) -> None:
        try:
            self._follow()
        except Exception:  # pragma: no cover - defensive: a follower must never kill the process
            log.exception("log follower for %s crashed", self.pod)
        finally:
            self.done.set()

    def _follow(self) -> None:
        backoff = _BACKOFF_MIN
        unclean_after_end = 0
        while not self.stopped:
            splitter = LogLineSplitter()
            clean = got_data = False
            try:
                resp = self._backend._open_log(self.pod, self.cursor.since_seconds(time.time()))
                self._resp = resp
                with self._backend._streams.track(resp):
                    if self.stopped:
                        return
                    _raise_for_status(resp)
                    self.cursor.begin_stream()
                    for chunk in resp.stream(amt=_LOG_CHUNK, decode_content=True):
                        if self.stopped:
                            return
                        if chunk:
                            got_data = True
                            self._deliver(splitter.feed(chunk))
                clean = True
            except ApiException as exc:
                if exc.status == 404:
                    return  # the pod is gone
                log.debug("log stream of %s failed: %s", self.pod, _describe(exc))
            except Exception as exc:  # network trouble: resume below
                if self.stopped:
                    return
                log.debug("log stream of %s broke: %s", self.pod, _describe(exc))
            finally:
                self._resp = None
            if self.stopped:
                return
            try:
                finished = self._backend._pod_finished((self.attempt_id, self.rank), self.pod)
            except Exception:  # unknown: assume still running, retry later
                finished = False
            if finished:
                if clean:
                    self._deliver(splitter.flush())
                    return
                unclean_after_end += 1
                if unclean_after_end >= 3:
                    return
            if got_data:
                backoff = _BACKOFF_MIN
            self._cancelled.wait(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    def _deliver(self, raw_lines: list[str]) -> None:
        lines: list[str] = []
        for raw in raw_lines:
            token, sep, text = raw.partition(" ")
            key = parse_log_timestamp(token)
            if key is None:
                text = raw
            elif not sep:
                text = ""
            if self.cursor.accept(key):
                lines.append(text)
        if lines:
            self.delivered += len(lines)
            self._backend._emit_logs(self.attempt_id, self.rank, lines)


# --------------------------------------------------------------------------------------------------
# The backend


@dataclass
class _Seen:
    obj: JsonDict
    seen_at: float  # time.monotonic() when this version was stored


class KubernetesBackend(Backend):
    """One Pod per rank in ``namespace``; see the module docstring for the whole design."""

    name = "kubernetes"

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace: str,
        image_pull_secrets: Sequence[str] = (),
        log_sink: LogSink | None = None,
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
        self._pull_secrets = tuple(image_pull_secrets)
        self._log_sink = log_sink
        self._master_port = master_port
        self._prefix = owner_label_prefix
        self._suspend_grace = suspend_grace_seconds
        self._relist_interval = relist_interval
        self._request_timeout = request_timeout
        self._secret_env = re.compile(secret_env_pattern, re.IGNORECASE) if secret_env_pattern else None

        self.label_attempt = f"{owner_label_prefix}/attempt"
        self.label_chain = f"{owner_label_prefix}/chain"
        self.label_rank = f"{owner_label_prefix}/rank"
        self.label_user = f"{owner_label_prefix}/user"
        self.annotation_stop_reason = f"{owner_label_prefix}/stop-reason"

        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._streams = _Streams(self._closing)
        self._pods: dict[tuple[int, int], _Seen] = {}
        self._tombstones: dict[tuple[int, int], RankObservation] = {}
        self._stop_reasons: dict[int, str] = {}
        self._released: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._followers: dict[tuple[int, int], _LogFollower] = {}
        self._last_output: dict[int, float] = {}
        self._nodes: dict[str, JsonDict] = {}
        self._pod_informer: _Informer | None = None
        self._node_informer: _Informer | None = None

    # ----------------------------------------------------------------------------------------------
    # Manifests (pure: no API calls)

    def master_addr(self, attempt_id: int) -> str:
        return f"{pod_name(attempt_id, 0)}.{service_name(attempt_id)}.{self._namespace}.svc"

    def attempt_labels(self, spec: LaunchSpec) -> dict[str, str]:
        return {
            self.label_attempt: str(spec.attempt_id),
            self.label_chain: sanitize_label_value(spec.chain_id),
            self.label_user: sanitize_label_value(spec.user),
        }

    def pod_labels(self, spec: LaunchSpec, rank: int) -> dict[str, str]:
        labels: dict[str, str] = {}
        for key, value in spec.labels.items():
            clean = sanitize_label_key(key)
            if clean is None or self._reserved_label(clean):
                continue
            labels[clean] = sanitize_label_value(value)
        labels.update(self.attempt_labels(spec))
        labels[self.label_rank] = str(rank)
        return dict(sorted(labels.items()))

    def _reserved_label(self, key: str) -> bool:
        domain = key.rpartition("/")[0]
        if not domain:
            return False
        if domain == self._prefix or domain.endswith("." + self._prefix):
            return True
        return any(domain == d or domain.endswith("." + d) for d in _RESERVED_LABEL_DOMAINS)

    def build_service(self, spec: LaunchSpec) -> JsonDict:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": service_name(spec.attempt_id),
                "namespace": self._namespace,
                "labels": self.attempt_labels(spec),
            },
            "spec": {
                "clusterIP": "None",
                "selector": {self.label_attempt: str(spec.attempt_id)},
                "publishNotReadyAddresses": True,
                "ports": [
                    {"name": "master", "port": self._master_port, "targetPort": self._master_port, "protocol": "TCP"}
                ],
            },
        }

    def _owner_reference(self, attempt_id: int, owner_uid: str) -> JsonDict:
        return {"apiVersion": "v1", "kind": "Service", "name": service_name(attempt_id), "uid": owner_uid}

    def _is_secret_env(self, name: str) -> bool:
        return self._secret_env is not None and self._secret_env.search(name) is not None

    def rank_env(self, spec: LaunchSpec, rank: RankSpec) -> dict[str, str]:
        """The environment of one rank, as values (before splitting secrets out)."""
        values = dict(rank.env)
        values.pop("NVIDIA_VISIBLE_DEVICES", None)
        if spec.gpus_per_rank > 0:
            values.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            values["NVIDIA_VISIBLE_DEVICES"] = "void"
        values["MASTER_ADDR"] = self.master_addr(spec.attempt_id)
        values["MASTER_PORT"] = str(self._master_port)
        return values

    @staticmethod
    def _secret_key(rank: int, env_name: str) -> str:
        return f"{rank}.{_SECRET_KEY_BAD.sub('_', env_name)}"

    def build_secret(self, spec: LaunchSpec, owner_uid: str) -> JsonDict | None:
        data: dict[str, str] = {}
        for rank in spec.ranks:
            for env_name, value in self.rank_env(spec, rank).items():
                if self._is_secret_env(env_name):
                    data[self._secret_key(rank.rank, env_name)] = base64.b64encode(value.encode()).decode()
        if not data:
            return None
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret_name(spec.attempt_id),
                "namespace": self._namespace,
                "labels": self.attempt_labels(spec),
                "ownerReferences": [self._owner_reference(spec.attempt_id, owner_uid)],
            },
            "type": "Opaque",
            "immutable": True,
            "data": dict(sorted(data.items())),
        }

    def _env_list(self, spec: LaunchSpec, rank: RankSpec) -> list[JsonDict]:
        env: list[JsonDict] = []
        for env_name, value in sorted(self.rank_env(spec, rank).items()):
            if self._is_secret_env(env_name):
                ref = {"name": secret_name(spec.attempt_id), "key": self._secret_key(rank.rank, env_name)}
                env.append({"name": env_name, "valueFrom": {"secretKeyRef": ref}})
            else:
                env.append({"name": env_name, "value": value})
        return env

    @staticmethod
    def command(spec: LaunchSpec) -> list[str]:
        if spec.kind == EntrypointKind.PYTHON:
            return [spec.interpreter, "-u", spec.entrypoint, *spec.parameters]
        if spec.kind == EntrypointKind.BASH:
            return ["bash", spec.entrypoint, *spec.parameters]
        if spec.kind == EntrypointKind.EXECUTABLE:
            return [spec.entrypoint, *spec.parameters]
        raise ValueError(f"unknown entrypoint kind: {spec.kind!r}")

    @staticmethod
    def _volume(index: int, mount: MountSpec) -> JsonDict:
        name = f"mount-{index}"
        if mount.kind == "host_path":
            return {"name": name, "hostPath": {"path": mount.source}}
        if mount.kind == "pvc":
            return {"name": name, "persistentVolumeClaim": {"claimName": mount.source, "readOnly": mount.read_only}}
        if mount.kind == "configmap":
            return {"name": name, "configMap": {"name": mount.source}}
        raise ValueError(f"unknown mount kind: {mount.kind!r}")

    def _volumes(self, spec: LaunchSpec) -> tuple[list[JsonDict], list[JsonDict]]:
        volumes: list[JsonDict] = []
        mounts: list[JsonDict] = []
        for index, mount in enumerate(spec.mounts):
            volume = self._volume(index, mount)
            volumes.append(volume)
            mounts.append({"name": volume["name"], "mountPath": mount.container_path, "readOnly": mount.read_only})
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": SHM_VOLUME, "mountPath": SHM_PATH, "readOnly": False})
        return volumes, mounts

    @staticmethod
    def _resources(spec: LaunchSpec) -> JsonDict:
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        if spec.cpu > 0:
            requests["cpu"] = cpu_quantity(spec.cpu)
        if spec.memory_bytes > 0:
            requests["memory"] = limits["memory"] = str(spec.memory_bytes)
        if spec.gpus_per_rank > 0:
            requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(spec.gpus_per_rank)
        resources: JsonDict = {}
        if requests:
            resources["requests"] = requests
        if limits:
            resources["limits"] = limits
        return resources

    def build_pod(self, spec: LaunchSpec, rank: RankSpec, owner_uid: str) -> JsonDict:
        self.validate(spec)
        name = pod_name(spec.attempt_id, rank.rank)
        volumes, mounts = self._volumes(spec)
        capabilities: JsonDict = {"drop": ["ALL"]}
        granted = normalize_capabilities(spec.capabilities)
        if granted:
            capabilities["add"] = granted
        container: JsonDict = {
            "name": CONTAINER_NAME,
            "image": spec.image,
            "command": self.command(spec),
            "workingDir": spec.workspace,
            "env": self._env_list(spec, rank),
            "resources": self._resources(spec),
            "volumeMounts": mounts,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": spec.uid,
                "allowPrivilegeEscalation": False,
                "privileged": False,
                "capabilities": capabilities,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
        pod_spec: JsonDict = {
            "hostname": name,
            "subdomain": service_name(spec.attempt_id),
            "restartPolicy": "Never",
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [rank.node]}]}
                        ]
                    }
                }
            },
            "terminationGracePeriodSeconds": self._suspend_grace,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "hostNetwork": False,
            "hostPID": False,
            "hostIPC": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": spec.uid,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": volumes,
        }
        if self._pull_secrets:
            pod_spec["imagePullSecrets"] = [{"name": secret} for secret in self._pull_secrets]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": self._namespace,
                "labels": self.pod_labels(spec, rank.rank),
                "ownerReferences": [self._owner_reference(spec.attempt_id, owner_uid)],
            },
            "spec": pod_spec,
        }

    @staticmethod
    def validate(spec: LaunchSpec) -> None:
        if spec.uid < 1:
            raise ValueError("pods run as non-root: uid must be >= 1")
        if not spec.ranks:
            raise ValueError("an attempt needs at least one rank")
        ranks = [rank.rank for rank in spec.ranks]
        if len(set(ranks)) != len(ranks) or min(ranks) < 0:
            raise ValueError("ranks must be distinct and >= 0")
        if not spec.image:
            raise ValueError("the kubernetes backend needs an image")
        if spec.gpus_per_rank < 0 or spec.cpu < 0 or spec.memory_bytes < 0:
            raise ValueError("resources must be >= 0")
        normalize_capabilities(spec.capabilities)
        paths = {SHM_PATH}
        for mount in spec.mounts:
            if mount.kind not in MOUNT_KINDS:
                raise ValueError(f"unknown mount kind: {mount.kind!r}")
            if mount.container_path in paths:
                raise ValueError(f"two mounts at {mount.container_path}")
            paths.add(mount.container_path)

    # ----------------------------------------------------------------------------------------------
    # API helpers

    def _request(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JsonDict:
        resp = fn(*args, _preload_content=False, _request_timeout=(_CONNECT_TIMEOUT, self._request_timeout), **kwargs)
        data = _read_json(resp)
        return data if isinstance(data, dict) else {}

    def _ignore_404(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JsonDict | None:
        try:
            return self._request(fn, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

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

    def _open_log(self, pod: str, since_seconds: int | None) -> Any:
        kwargs: dict[str, Any] = {
            "container": CONTAINER_NAME,
            "follow": True,
            "timestamps": True,
            "_preload_content": False,
            "_request_timeout": (_CONNECT_TIMEOUT, _LOG_READ_TIMEOUT),
        }
        if since_seconds is not None:
            kwargs["since_seconds"] = since_seconds
        return self._core.read_namespaced_pod_log(pod, self._namespace, **kwargs)

    # ----------------------------------------------------------------------------------------------
    # Backend interface

    def start(self, spec: LaunchSpec) -> None:
        self.validate(spec)
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
        secret = self.build_secret(spec, owner_uid)
        if secret is not None:
            self._create(self._core.create_namespaced_secret, secret)
        for rank in spec.ranks:
            key = (attempt_id, rank.rank)
            with self._lock:
                if key in self._pods or key in self._tombstones:
                    continue  # seen before: never create a rank twice
            created = self._create(self._core.create_namespaced_pod, self.build_pod(spec, rank, owner_uid))
            if created is not None:
                with self._lock:
                    self._upsert_pod_locked(created, time.monotonic())

    def _create(self, fn: Callable[..., Any], body: JsonDict) -> JsonDict | None:
        """Create; ``None`` if it already exists (409)."""
        try:
            return self._request(fn, self._namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def _ensure_service(self, spec: LaunchSpec) -> JsonDict:
        created = self._create(self._core.create_namespaced_service, self.build_service(spec))
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
            pending_grace = meta.get("deletionGracePeriodSeconds")
            if meta.get("deletionTimestamp") and pending_grace is not None and pending_grace <= grace:
                continue  # already terminating at least this fast
            self._ignore_404(self._core.delete_namespaced_pod, name, self._namespace, grace_period_seconds=grace)

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
        found: set[int] = set()
        for fn in (self._core.list_namespaced_service, self._core.list_namespaced_pod):
            for obj in self._list(fn, self._namespace, selector=self.label_attempt):
                attempt_id = self._attempt_of(obj)
                if attempt_id is not None:
                    found.add(attempt_id)
        return found

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
            followers = [self._followers.pop(key) for key in list(self._followers) if key[0] == attempt_id]
            self._stop_reasons.pop(attempt_id, None)
            self._last_output.pop(attempt_id, None)
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
            self._ignore_404(self._core.delete_namespaced_pod, name, self._namespace, grace_period_seconds=0)

    def nodes(self) -> list[NodeObservation]:
        informer = self._node_informer
        if informer is not None and informer.synced.is_set() and informer.alive:
            with self._lock:
                objs = list(self._nodes.values())
        else:
            objs = [item for item in self._request(self._core.list_node).get("items") or [] if isinstance(item, dict)]
        return sorted((self._observe_node(obj) for obj in objs), key=lambda node: node.name)

    def last_output_at(self, attempt_id: int) -> float | None:
        with self._lock:
            return self._last_output.get(attempt_id)

    def close(self) -> None:
        self._closing.set()
        self._streams.abort_all()
        with self._lock:
            followers = list(self._followers.values())
        for follower in followers:
            follower.cancel()
        for informer in (self._pod_informer, self._node_informer):
            if informer is not None:
                informer.join(_JOIN_TIMEOUT)
        for follower in followers:
            follower.join(_JOIN_TIMEOUT)

    # ----------------------------------------------------------------------------------------------
    # Watching

    def start_watching(self) -> None:
        """Start the pod and node informers (idempotent). ``close()`` stops them."""
        with self._lock:
            if self._closing.is_set():
                raise RuntimeError("the backend is closed")
            if self._pod_informer is not None:
                return
            common: dict[str, Any] = {
                "relist_interval": self._relist_interval,
                "request_timeout": self._request_timeout,
                "closing": self._closing,
                "streams": self._streams,
            }
            self._pod_informer = _Informer(
                name="pods",
                list_call=functools.partial(
                    self._core.list_namespaced_pod, self._namespace, label_selector=self.label_attempt
                ),
                select=lambda obj: self._pod_key(obj) is not None,
                on_replace=lambda items, started: self._replace_pods(items, started),
                on_event=self._on_pod_event,
                **common,
            )
            self._node_informer = _Informer(
                name="nodes",
                list_call=self._core.list_node,
                select=lambda obj: bool((obj.get("metadata") or {}).get("name")),
                on_replace=self._replace_nodes,
                on_event=self._on_node_event,
                **common,
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
        informer = self._pod_informer
        return informer is not None and informer.synced.is_set() and informer.alive

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

    # ----------------------------------------------------------------------------------------------
    # Status mapping

    def _observe_pod(self, rank: int, pod: JsonDict) -> RankObservation:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        stop_reason = (meta.get("annotations") or {}).get(self.annotation_stop_reason)
        node = spec.get("nodeName") or _pinned_node(spec)
        container = _container_status(status)
        state = container.get("state") or {}
        running = state.get("running") or {}
        terminated = state.get("terminated") or (container.get("lastState") or {}).get("terminated") or {}
        started_at = parse_k8s_time(running.get("startedAt") or terminated.get("startedAt") or status.get("startTime"))
        finished_at = parse_k8s_time(terminated.get("finishedAt"))
        exit_code = terminated.get("exitCode")
        exit_code = int(exit_code) if isinstance(exit_code, int) else None

        if phase == "Pending":
            return RankObservation(rank, RankPhase.PENDING, node, started_at=None, message=_pending_message(status))
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

    @staticmethod
    def _observe_node(node: JsonDict) -> NodeObservation:
        name = (node.get("metadata") or {}).get("name") or ""
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None)
        if ready is None:
            return NodeObservation(name, False, "no Ready condition")
        if ready.get("status") != "True":
            return NodeObservation(name, False, str(ready.get("reason") or "NotReady"))
        if (node.get("spec") or {}).get("unschedulable"):
            return NodeObservation(name, False, "cordoned")
        return NodeObservation(name, True, "")

    # ----------------------------------------------------------------------------------------------
    # Logs

    def _maybe_follow_logs_locked(self, key: tuple[int, int], pod: JsonDict) -> None:
        if self._log_sink is None or self._closing.is_set() or key in self._followers:
            return
        status = pod.get("status") or {}
        phase = status.get("phase")
        if phase == "Running" or (phase in FINAL_POD_PHASES and _container_ran(status)):
            follower = _LogFollower(self, key[0], key[1], (pod.get("metadata") or {}).get("name") or "")
            self._followers[key] = follower
            follower.start()

    def _emit_logs(self, attempt_id: int, rank: int, lines: list[str]) -> None:
        if self._log_sink is None:
            return
        try:
            self._log_sink(attempt_id, rank, lines)
        except Exception:
            log.exception("log sink failed for attempt %s rank %s", attempt_id, rank)
        with self._lock:
            if attempt_id not in self._released:
                self._last_output[attempt_id] = time.time()

    def _pod_finished(self, key: tuple[int, int], name: str) -> bool:
        """Is the pod final or gone? (the log follower asks once its stream has ended)"""
        if self._pods_synced():
            with self._lock:
                seen = self._pods.get(key)
            return seen is None or (seen.obj.get("status") or {}).get("phase") in FINAL_POD_PHASES
        pod = self._ignore_404(self._core.read_namespaced_pod, name, self._namespace)
        return pod is None or (pod.get("status") or {}).get("phase") in FINAL_POD_PHASES

    def active_log_streams(self) -> set[tuple[int, int]]:
        """``(attempt, rank)`` pairs whose log follower is still running (for tests and /monitor)."""
        with self._lock:
            return {key for key, follower in self._followers.items() if not follower.done.is_set()}


def _container_status(status: JsonDict) -> JsonDict:
    statuses = [s for s in status.get("containerStatuses") or [] if isinstance(s, dict)]
    for container in statuses:
        if container.get("name") == CONTAINER_NAME:
            return container
    return statuses[0] if statuses else {}


def _container_ran(status: JsonDict) -> bool:
    container = _container_status(status)
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
    waiting = (_container_status(status).get("state") or {}).get("waiting") or {}
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
