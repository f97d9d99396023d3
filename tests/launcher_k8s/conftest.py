"""Fixtures: kmock's Kubernetes emulator served over real HTTP to the official ``kubernetes`` client.

kmock is asyncio-based and the ``kubernetes`` client is blocking, so the emulator runs in an event
loop of its own in a background thread (``KubeServer``); everything that touches kmock's objects or
DSL from the test thread goes through ``KubeServer.call``, which runs it inside that loop.

``RotaEmulator`` adds to kmock's emulator what a real API server does and the backend relies on:
``metadata.uid``/``resourceVersion``/``namespace``/``creationTimestamp`` on create, a new
``resourceVersion`` on every patch, a list ``resourceVersion``, and ``labelSelector`` filtering on
lists (kmock 0.8 ignores selectors and returns ``"..."`` as the list's resourceVersion).

kmock's own watch only replays the current objects and never streams later changes, so watches
(and pod log follows) are scripted with ``StreamScript``: each matching request opens a session the
test feeds event by event (``push``), ends normally (``end``), or fails (``fail_next``).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime as dt
import itertools
import pathlib
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import kmock
import pytest
from kubernetes import client

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the repo root, for ``apps`` (pytest runs with ``-p no:django`` here)
    sys.path.insert(0, str(ROOT))

from apps.launcher.backends.kubernetes import KubernetesBackend  # noqa: E402

NAMESPACE = "rota-jobs"
RESOURCES = {
    "v1/pods": kmock.ResourceInfo(namespaced=True, kind="Pod"),
    "v1/services": kmock.ResourceInfo(namespaced=True, kind="Service"),
    "v1/secrets": kmock.ResourceInfo(namespaced=True, kind="Secret"),
    "v1/nodes": kmock.ResourceInfo(namespaced=False, kind="Node"),
    "networking.k8s.io/v1/ingresses": kmock.ResourceInfo(namespaced=True, kind="Ingress"),
}
_resource_versions = itertools.count(100)


def _label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for raw in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in raw:
            key, value = (s.strip() for s in raw.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in raw:
            key, value = (s.strip() for s in raw.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif raw.startswith("!"):
            if raw[1:].strip() in labels:
                return False
        elif raw not in labels:
            return False
    return True


class RotaEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus server-assigned metadata and label selectors (see module docstring)."""

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is not None and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if request.action == kmock.action.CREATE:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta["resourceVersion"] = str(next(_resource_versions))
                meta.setdefault("creationTimestamp", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
                if request.namespace:
                    meta.setdefault("namespace", request.namespace)
            elif request.action == kmock.action.UPDATE:
                meta["resourceVersion"] = str(next(_resource_versions))
        return await super()._handle(request)

    async def _serve_list(self, request: kmock.Request) -> Any:
        result: Any = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector:
            result["items"] = [
                item
                for item in result["items"]
                if _label_selector_matches(selector, (item.get("metadata") or {}).get("labels") or {})
            ]
        result["metadata"] = {"resourceVersion": str(next(_resource_versions))}
        return result


_END = object()


class StreamScript:
    """Scripted streaming responses for the requests that match one kmock view.

    Every matching request becomes a session: the response headers go out at once, then whatever
    the test ``push``-es (dicts become JSON lines, bytes go raw) until ``end``. ``fail_next`` makes
    the next request fail with an exception instead (e.g. ``kmock.KubernetesError(status=410)``).
    """

    def __init__(self, server: KubeServer, view: Callable[[RotaEmulator], Any]) -> None:
        self._server = server
        self._sessions: list[asyncio.Queue[Any]] = []  # the event loop's side only
        self._failures: collections.deque[BaseException] = collections.deque()
        self.requests: list[kmock.Request] = []
        server.call(lambda: view(server.emulator) << self._serve)

    async def _serve(self, request: kmock.Request) -> Any:
        if self._failures:
            self.requests.append(request)
            raise self._failures.popleft()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._sessions.append(queue)
        self.requests.append(request)
        return self._stream(queue)

    async def _stream(self, queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
        yield b""  # send the headers now: the client returns from its call only then
        while (item := await queue.get()) is not _END:
            yield item

    @property
    def opened(self) -> int:
        return len(self.requests)

    def push(self, *items: Any) -> None:
        """Feed items into the newest session."""

        def feed() -> None:
            for item in items:
                self._sessions[-1].put_nowait(item)

        self._server.call(feed)

    def end(self) -> None:
        """End the newest session normally (the server closes the stream)."""
        self.push(_END)

    def fail_next(self, exc: BaseException) -> None:
        self._server.call(lambda: self._failures.append(exc))

    def end_all(self) -> None:
        def feed() -> None:
            for queue in self._sessions:
                queue.put_nowait(_END)

        self._server.call(feed)


class KubeServer:
    """A RotaEmulator behind ``kmock.Server`` on a localhost port, in its own thread and loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self.emulator: RotaEmulator
        self._ready = threading.Event()
        self._stopped: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kmock-server", daemon=True)
        self.scripts: list[StreamScript] = []

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"kmock server did not start: {self._error!r}")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stopped = self.loop.create_future()
        async with RotaEmulator() as emulator, kmock.Server(emulator) as server:
            for resource, info in RESOURCES.items():
                emulator.resources[resource] = info
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stopped

    def stop(self) -> None:
        for script in self.scripts:
            script.end_all()
        if self._stopped is not None:
            self.loop.call_soon_threadsafe(self._stopped.set_result, None)
        self._thread.join(30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` inside the server's event loop and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def script(self, view: Callable[[RotaEmulator], Any]) -> StreamScript:
        script = StreamScript(self, view)
        self.scripts.append(script)
        return script

    # --- inspection ---------------------------------------------------------------------------

    def requests(self, **criteria: Any) -> list[kmock.Request]:
        """Received requests whose attributes equal ``criteria`` (e.g. ``method="DELETE"``)."""

        def matches(request: kmock.Request) -> bool:
            for key, expected in criteria.items():
                actual = getattr(request, key)
                if key == "resource":
                    actual = actual.plural if actual is not None else None
                if key == "method":
                    actual = actual.value
                if actual != expected:
                    return False
            return True

        return self.call(lambda: [request for request in self.emulator if matches(request)])

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        def fetch() -> dict[str, Any] | None:
            key = (kmock.resource(resource), namespace, name)
            if key not in self.emulator.objects or self.emulator.objects[key].deleted:
                return None
            return copy.deepcopy(self.emulator.objects[key].raw)

        return self.call(fetch)

    def last(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        """The last stored state, also of a deleted object (for DELETED events)."""
        return self.call(lambda: copy.deepcopy(self.emulator.objects[resource, namespace, name].last.raw))

    def names(self, resource: str, namespace: str | None = NAMESPACE) -> list[str]:
        def collect() -> list[str]:
            return sorted(
                name
                for (res, ns, name), obj in self.emulator.objects.items()
                if res == resource and ns == namespace and not obj.deleted
            )

        return self.call(collect)


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds. The default
    leaves room for a loaded CI host (two test workers and a browser on two cores): the backend's
    watch and log threads, their HTTP to the emulated API server and the processes some tests start
    can take seconds there; a wait ends as soon as the condition holds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def kube() -> Iterator[KubeServer]:
    server = KubeServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pod_watch(kube: KubeServer) -> StreamScript:
    return kube.script(lambda emu: emu[kmock.action.WATCH][kmock.resource("v1/pods")])


@pytest.fixture
def node_watch(kube: KubeServer) -> StreamScript:
    return kube.script(lambda emu: emu[kmock.action.WATCH][kmock.resource("v1/nodes")])


@pytest.fixture
def pod_logs(kube: KubeServer) -> StreamScript:
    return kube.script(lambda emu: emu["get", kmock.subresource("log")])


@pytest.fixture
def api_client(kube: KubeServer) -> Iterator[client.ApiClient]:
    api = client.ApiClient(client.Configuration(host=kube.url))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def make_backend(api_client: client.ApiClient) -> Iterator[Callable[..., KubernetesBackend]]:
    backends: list[KubernetesBackend] = []

    def factory(**kwargs: Any) -> KubernetesBackend:
        backend = KubernetesBackend(api_client, namespace=NAMESPACE, **kwargs)
        backends.append(backend)
        return backend

    try:
        yield factory
    finally:
        for backend in backends:
            backend.close()
