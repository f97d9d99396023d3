"""The deploy files' start-up commands, run as written.

There is no container engine here, so each container's command runs as a process of this machine
with the environment compose (or the Kubernetes manifest) gives it: ``deploy/.env`` made from
``.env.example`` with the edits docs/operations.md asks for, then the service's ``environment``
with compose's interpolation. Only what cannot exist here is changed: the host names ``postgres``
and ``redis`` (this test's PostgreSQL and Redis), the ports, and the volume paths.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import pathlib
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = pathlib.Path(sys.executable).parent
#: What docs/operations.md ("One host with compose") says to set in deploy/.env.
DOCUMENTED_EDITS = {
    "SECRET_KEY": "compose-test-" + "k" * 60,
    "ALLOWED_HOSTS": "rota.example.org",
    "POSTGRES_PASSWORD": "pg-password-1",
    "REDIS_PASSWORD": "redis-password-1",
}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:\?|:-)([^}]*))?\}")


def env_file(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(value: str, variables: dict[str, str]) -> str:
    """compose's ``${X}``, ``${X:-default}`` and ``${X:?error}`` (an error when X is unset or empty)."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        current = variables.get(name, "")
        if op == ":?" and not current:
            raise ValueError(f"compose refuses to start: {arg}")
        if op == ":-" and not current:
            return arg
        return current

    return _VARIABLE.sub(replace, value).replace("$$", "$")


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_env(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """The environment compose gives ``service``: the env_file, then ``environment`` over it."""
    spec = compose()["services"][service]
    env = dict(dotenv) if spec.get("env_file") == ".env" else {}
    for key, value in (spec.get("environment") or {}).items():
        env[key] = interpolate(str(value), dotenv)
    return env


def documented_dotenv() -> dict[str, str]:
    return {**env_file((ROOT / ".env.example").read_text()), **DOCUMENTED_EDITS}


def settings_of(env: dict[str, str], tmp_path: pathlib.Path, *names: str) -> dict[str, str]:
    """Load the settings a container would (production refuses insecure ones) and read ``names``."""
    code = "import django; django.setup(); from django.conf import settings as s; " + "; ".join(
        f"print(repr(s.{n}))" for n in names
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=process_env(env, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(zip(names, result.stdout.split("\n"), strict=False))


def process_env(env: dict[str, str], tmp_path: pathlib.Path) -> dict[str, str]:
    out = {k: v for k, v in env.items() if k != "KUBECONFIG" or v != "/kube/config"}
    out.update(
        PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        HOME=str(tmp_path),
        ROTA_DATA_DIR=str(tmp_path / "var"),
        ROTA_STATIC_ROOT=str(tmp_path / "staticfiles"),  # the image's /app/staticfiles
        DJANGO_SETTINGS_MODULE="portal.settings",
    )
    if out.get("ROTA_LOG_ROOT") == "/logs":  # a volume in the container
        out["ROTA_LOG_ROOT"] = str(tmp_path / "logs")
    return out


def manage_command(argv: list[str]) -> str | None:
    """``python manage.py NAME ...`` → NAME."""
    return argv[2] if argv[:2] == ["python", "manage.py"] and len(argv) > 2 else None


def test_compose_needs_the_documented_passwords() -> None:
    dotenv = documented_dotenv()
    for missing in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        with pytest.raises(ValueError, match=f"set {missing} in deploy/.env"):
            compose_env("web", {**dotenv, missing: ""})


@pytest.mark.parametrize("service", ["migrate", "web", "worker", "qcluster"])
def test_each_compose_service_loads_production_settings_and_its_command_exists(
    service: str, tmp_path: pathlib.Path
) -> None:
    env = compose_env(service, documented_dotenv())
    found = settings_of(
        env, tmp_path, "PRODUCTION", "DEBUG", "ROTA_TASK_RUNNER", "ROTA_BACKEND", "ROTA_LAUNCHER['CLUSTER_OWNER']"
    )
    # Tasks go to the django-q2 workers (the qcluster container); in a thread of the web server
    # they would run launcher passes where there is no kube config at all.
    assert found == {
        "PRODUCTION": "True",
        "DEBUG": "False",
        "ROTA_TASK_RUNNER": "'django_q'",
        "ROTA_BACKEND": "'kubernetes'",
        "ROTA_LAUNCHER['CLUSTER_OWNER']": "False" if service == "qcluster" else "True",
    }
    command = compose()["services"][service].get("command")
    name = manage_command(command) if command else None
    if name:
        result = subprocess.run(
            [sys.executable, "manage.py", "help", name],
            cwd=ROOT,
            env=process_env(env, tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr


def kubernetes_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "rota.yaml").read_text()):
        if doc and doc["kind"] in ("Deployment", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield f"{doc['metadata']['name']}/{container['name']}", container


def dockerfile_collectstatic() -> tuple[dict[str, str], list[str]]:
    """The image's build step that writes the static files' manifest: its variables and argv."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^RUN (.*collectstatic.*?)(?: && |$)", text, re.M)
    assert match is not None
    words = shlex.split(match[1])
    env = dict(w.split("=", 1) for w in itertools.takewhile(lambda w: re.match(r"^[A-Z_]+=", w), words))
    return env, words[len(env) :]


def dockerfile_cmd() -> list[str]:
    match = re.search(r"^CMD (\[.*\])$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert match is not None
    return list(yaml.safe_load(match[1]))


@pytest.mark.parametrize("name", [name for name, _ in kubernetes_containers()])
def test_each_kubernetes_container_command_exists_with_the_documented_secret(name: str, tmp_path) -> None:
    container = dict(kubernetes_containers())[name]
    # The Secret rota-env of docs/operations.md ("Install on a Kubernetes cluster", step 2).
    env = {
        "SECRET_KEY": "k8s-test-" + "k" * 60,
        "DATABASE_URL": "postgres://rota:PASSWORD@db.example:5432/rota",
        "REDIS_URL": "redis://:PASSWORD@redis.example:6379/0",
        "ALLOWED_HOSTS": "rota.example.org",
        "CSRF_TRUSTED_ORIGINS": "https://rota.example.org",
    }
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    env.pop("ROTA_K8S_IN_CLUSTER", None)  # needs the pod's service account files
    argv = container.get("command") or dockerfile_cmd()
    if argv[0] == "daphne":
        code = "import portal.asgi; print(type(portal.asgi.application).__name__)"
        assert argv[-1] == "portal.asgi:application"
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=process_env(env, tmp_path), capture_output=True, text=True
        )
    else:
        command = manage_command(argv)
        assert command is not None, argv
        result = subprocess.run(
            [sys.executable, "manage.py", "help", command],
            cwd=ROOT,
            env=process_env(env, tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert (VENV_BIN / "daphne").exists()


# --- the stack for real: migrate an empty database, serve, run the worker against kmock --------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A new, empty PostgreSQL database next to the test one; dropped afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")) or not os.environ.get("REDIS_URL"):
        pytest.skip("the production stack needs PostgreSQL and Redis (production profile)")
    import psycopg

    name = f"rota_deploy_{secrets.token_hex(4)}"
    parts = urllib.parse.urlsplit(url)
    admin = psycopg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")), autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def wait_for(predicate: Any, timeout: float, what: str, *, fail: bool = True) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    if fail:
        raise AssertionError(f"timed out waiting for {what}")
    return None


def http_get(port: int, path: str, host: str, timeout: float = 10) -> tuple[int, bytes]:
    """One request to the local server, never following a redirect (it would leave this machine)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        connection.close()


def stop(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        raise


def test_the_compose_stack_migrates_serves_probes_and_owns_the_cluster(empty_database: str, tmp_path) -> None:
    from tests.launcher_k8s.conftest import KubeServer

    dotenv = documented_dotenv()
    redis_url = os.environ["REDIS_URL"]

    def env_for(service: str) -> dict[str, str]:
        env = process_env(compose_env(service, dotenv), tmp_path)
        assert env["DATABASE_URL"] == "postgres://rota:pg-password-1@postgres:5432/rota"
        assert env["REDIS_URL"] == "redis://:redis-password-1@redis:6379/0"
        env.update(DATABASE_URL=empty_database, REDIS_URL=redis_url)
        return env

    # The image's build step: static files and their manifest (production serves hashed names).
    build_env, build_argv = dockerfile_collectstatic()
    assert build_argv == ["python", "manage.py", "collectstatic", "--noinput", "-v0"]
    collected = subprocess.run(
        [sys.executable, *build_argv[1:]],
        cwd=ROOT,
        env=process_env(build_env, tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert collected.returncode == 0, collected.stderr[-2000:]
    assert (tmp_path / "staticfiles" / "staticfiles.json").exists()

    services = compose()["services"]
    migrate = subprocess.run(
        [sys.executable if a == "python" else a for a in services["migrate"]["command"]],
        cwd=ROOT,
        env=env_for("migrate"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    assert "Applying cluster.0001_initial... OK" in migrate.stdout

    # web: the image's CMD (compose sets none), on a free port instead of 8000.
    port = free_port()
    argv = dockerfile_cmd()
    argv[argv.index("-p") + 1] = str(port)
    argv[argv.index("-b") + 1] = "127.0.0.1"
    web = subprocess.Popen(
        argv, cwd=ROOT, env=env_for("web"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    kube = KubeServer()
    kube.start()
    worker: subprocess.Popen[str] | None = None
    try:
        # The kubelet probes by pod IP; compose's healthcheck by 127.0.0.1: neither is an allowed host.
        assert wait_for(lambda: http_get(port, "/healthz", "10.244.1.7:8000")[0] == 200, 60, "/healthz")
        status, body = http_get(port, "/readyz", "10.244.1.7:8000")
        assert status == 200, body
        assert http_get(port, "/readyz", "127.0.0.1:8000")[0] == 200
        # Everything else still checks the Host header; the allowed host gets the sign-in page.
        assert http_get(port, "/api/v1/", "evil.example")[0] == 400
        status, body = http_get(port, "/", "rota.example.org")
        assert status == 301  # to HTTPS: compose's web is meant to sit behind a TLS proxy

        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": kube.url}}],
                    "users": [{"name": "rota", "user": {"token": "t"}}],
                    "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "rota"}}],
                    "current-context": "kmock",
                }
            )
        )
        worker_env = env_for("worker")
        assert compose_env("worker", dotenv)["KUBECONFIG"] == "/kube/config"  # the read-only mount
        worker_env["KUBECONFIG"] = str(kubeconfig)
        worker_env["ROTA_WORKER_HEARTBEAT_DIR"] = str(tmp_path / "alive")  # as the manifest sets it
        worker = subprocess.Popen(
            [sys.executable if a == "python" else a for a in services["worker"]["command"]],
            cwd=ROOT,
            env=worker_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # It owns the cluster: it lists and watches the jobs namespace's pods and the nodes.
        watching = wait_for(
            lambda: kube.requests(method="GET", resource="pods") and kube.requests(method="GET", resource="nodes"),
            120,
            "the worker to watch pods and nodes",
            fail=False,
        )
        if not watching:
            stop(worker)
            output = worker.stdout.read() if worker.stdout else ""
            raise AssertionError(f"the worker never watched the cluster:\n{output[-4000:]}")
        # Its loops come round: the files the liveness probe of deploy/kubernetes/rota.yaml reads.
        wait_for(
            lambda: all((tmp_path / "alive" / name).exists() for name in ("scheduler", "launcher")), 60, "heartbeats"
        )
        assert worker.poll() is None
        assert stop(worker) == 0
        output = worker.stdout.read() if worker.stdout else ""
        assert "rota_worker running" in output and "Traceback" not in output, output[-3000:]
        assert stop(web) == 0
    finally:
        for process in (worker, web):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
        kube.stop()


class Forwarder:
    """A TCP forwarder on a fixed localhost port to ``target``: ``stop()`` is the service going down
    (the port refuses, open connections are cut), ``start()`` it coming back on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        listener.settimeout(0.1)  # a blocked accept() would go on accepting after close()
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()
        listener.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    status, body = http_get(port, "/readyz", "10.244.1.7:8000", timeout=5)
    return status, (json.loads(body) if body else {})


def test_the_served_readyz_follows_real_postgres_and_redis_outages(empty_database: str, tmp_path) -> None:
    """The image's web server, with its database and Redis behind forwarders that go down and up:
    unready within the probe's timeout (5 s in deploy/) while one is down, ready again after."""
    database, redis_url = empty_database, os.environ["REDIS_URL"]
    db_parts, redis_parts = urllib.parse.urlsplit(database), urllib.parse.urlsplit(redis_url)
    postgres = Forwarder((db_parts.hostname or "127.0.0.1", db_parts.port or 5432))
    redis = Forwarder((redis_parts.hostname or "127.0.0.1", redis_parts.port or 6379))

    def via(parts: urllib.parse.SplitResult, forwarder: Forwarder) -> str:
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{forwarder.port}" if credentials else f"127.0.0.1:{forwarder.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    env = process_env(compose_env("web", documented_dotenv()), tmp_path)
    env.update(DATABASE_URL=via(db_parts, postgres), REDIS_URL=via(redis_parts, redis))
    port = free_port()
    argv = dockerfile_cmd()
    argv[argv.index("-p") + 1] = str(port)
    argv[argv.index("-b") + 1] = "127.0.0.1"
    postgres.start()
    redis.start()
    log = tmp_path / "web.log"
    web = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        if not wait_for(lambda: readyz(port)[0] == 200, 60, "ready", fail=False):
            raise AssertionError(f"not ready: {readyz(port)}\n{log.read_text()[-3000:]}")
        for name, forwarder in (("database", postgres), ("redis", redis)):
            forwarder.stop()
            found = wait_for(lambda: (r := readyz(port))[0] == 503 and r, 30, name, fail=False)
            if not found:
                raise AssertionError(f"still {readyz(port)} without {name}\n{log.read_text()[-3000:]}")
            _status, report = found
            assert report["checks"][name]["ok"] is False, report
            other = "redis" if name == "database" else "database"
            assert report["checks"][other] == {"ok": True}
            assert http_get(port, "/healthz", "10.244.1.7:8000")[0] == 200  # alive: no restart for an outage
            forwarder.start()
            wait_for(lambda: readyz(port)[0] == 200, 30, f"ready again with {name}")
    finally:
        web.terminate()
        web.wait(30)
        postgres.stop()
        redis.stop()


def test_the_kubernetes_qcluster_keeps_its_liveness_file_fresh(empty_database: str, tmp_path) -> None:
    """The manifest's qcluster container (its command and variables, the documented Secret) on real
    PostgreSQL and Redis: django-q2's sentinel touches the file its liveness probe reads; frozen,
    the file ages and the probe fails; thawed, it is fresh again and the probe passes."""
    container = dict(kubernetes_containers())["rota-worker/qcluster"]
    env = {
        "SECRET_KEY": "k8s-test-" + "k" * 60,
        "DATABASE_URL": empty_database,
        "REDIS_URL": os.environ["REDIS_URL"],
        "ALLOWED_HOSTS": "rota.example.org",
        "CSRF_TRUSTED_ORIGINS": "https://rota.example.org",
    }
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    env.pop("ROTA_K8S_IN_CLUSTER", None)  # needs the pod's service account files
    directory = env["ROTA_WORKER_HEARTBEAT_DIR"]
    env["ROTA_WORKER_HEARTBEAT_DIR"] = str(tmp_path / "alive")
    probe = [part.replace(directory, str(tmp_path / "alive")) for part in container["livenessProbe"]["exec"]["command"]]
    beat = tmp_path / "alive" / "qcluster"

    def probe_passes() -> bool:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0

    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=process_env(env, tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    argv = container["command"]
    assert argv == ["python", "manage.py", "qcluster"]
    cluster = subprocess.Popen(
        [sys.executable, *argv[1:]],
        cwd=ROOT,
        env=process_env(env, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the sentinel and workers freeze together
    )
    try:
        assert not probe_passes()
        wait_for(beat.exists, 60, "the sentinel's first status save")
        assert probe_passes()
        os.killpg(cluster.pid, signal.SIGSTOP)  # a hung cluster: nothing runs any more
        three_minutes_ago = time.time() - 180
        os.utime(beat, (three_minutes_ago, three_minutes_ago))
        assert not probe_passes()
        os.killpg(cluster.pid, signal.SIGCONT)
        wait_for(probe_passes, 30, "the guard loop to touch the file again")
        assert cluster.poll() is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cluster.pid, signal.SIGCONT)
            os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait(10)
    output = cluster.stdout.read() if cluster.stdout else ""
    assert "Q Cluster" in output and "running" in output and "Traceback" not in output, output[-3000:]
