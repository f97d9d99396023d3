"""Lifecycle latency on the embedded profile, end to end through a real server.

    .venv/bin/python -m bench.lifecycle [--rounds 10] [--grace 3]

Starts daphne on a free port with a fresh data directory (SQLite, in-process scheduler and
launcher, the local backend and the example cluster), then measures over HTTP:

- **submit → running**: POST /api/v1/experiments/ until every rank runs (chain status ``running``),
  on an idle cluster. Target ≤ 1 s.
- **suspend → nodes free** for a job that cooperates (``go_suspend()`` on SIGTERM) and for one that
  ignores the notice (killed when the grace period ends). Target ≤ grace + 1 s.

It cleans up its server, jobs and directory, and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]

COOPERATIVE = """
import time
from rota import job
print("up", flush=True)
while not job.receive_suspend_command(poll=False):
    time.sleep(0.01)
job.go_suspend()
"""
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
print("up", flush=True)
while True:
    time.sleep(0.05)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


@contextlib.contextmanager
def embedded_server(grace: float) -> Iterator[tuple[str, str, Path]]:
    data = Path(tempfile.mkdtemp(prefix="rota-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "ROTA_ENV"}}
    env.update(
        ROTA_ENV="embedded",
        ROTA_DATA_DIR=str(data),
        ROTA_DEMO_PASSWORD="bench-pass-123",
        ROTA_SUSPEND_GRACE_SECONDS=str(grace),
        ROTA_SCHED_MIN_RUN_SECONDS="0",
        DJANGO_SETTINGS_MODULE="portal.settings",
    )
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "rota_bootstrap", "examples/cluster.toml"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    env["ROTA_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(url), 30, "the server")
        token = httpx.post(
            f"{url}/api/v1/auth/token/", json={"username": "alice", "password": "bench-pass-123"}, timeout=10
        ).json()["token"]
        yield url, token, data
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        _kill_jobs(data)
        shutil.rmtree(data, ignore_errors=True)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/schema/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _kill_jobs(data: Path) -> None:
    """Stop any rank still running from the bench's run directory."""
    sys.path.insert(0, str(ROOT))
    from apps.launcher.backends.local import LocalBackend
    from apps.logs.store import LogStore

    backend = LocalBackend(data / "run", LogStore(data / "logs"))
    for attempt_id in backend.known_attempts():
        backend.stop(attempt_id)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(rounds: int, grace: float) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {
        "submit_to_running": [],
        "suspend_to_free_cooperative": [],
        "suspend_to_free_ignoring": [],
    }
    with embedded_server(grace) as (url, token, data):
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        workspace = data / "ws"
        workspace.mkdir()
        (workspace / "coop.py").write_text(textwrap.dedent(COOPERATIVE))
        (workspace / "stubborn.py").write_text(textwrap.dedent(STUBBORN))

        def status(chain_id: int) -> dict[str, Any]:
            return client.get(f"/api/v1/experiments/{chain_id}/").json()

        def nodes_free(chain_id: int) -> bool:
            detail = status(chain_id)
            return detail["status"] in {"held", "suspended", "stopped", "canceled"} and all(
                r["finished_at"] for a in detail["attempts"] for r in a["ranks"]
            )

        for i in range(rounds):
            for kind, script in (("cooperative", "coop.py"), ("ignoring", "stubborn.py")):
                if kind == "ignoring" and i >= max(1, rounds // 3):
                    continue  # each of these costs the whole grace period
                body = {
                    "name": f"bench-{kind}-{i}",
                    "workspace": str(workspace),
                    "entrypoint": script,
                    "group": "training",
                    "nodes": 2,
                    "priority": "NORMAL",
                }
                began = time.perf_counter()
                chain = client.post("/api/v1/experiments/", json=body).json()
                wait_for(lambda c=chain["id"]: status(c)["status"] == "running", 30, "running")
                if kind == "cooperative":
                    results["submit_to_running"].append(time.perf_counter() - began)
                time.sleep(0.3)  # let the job install its SIGTERM handler ("up" printed)
                began = time.perf_counter()
                client.post(f"/api/v1/experiments/{chain['id']}/suspend/")
                wait_for(lambda c=chain["id"]: nodes_free(c), grace + 30, "nodes free")
                results[f"suspend_to_free_{kind}"].append(time.perf_counter() - began)
                client.post(f"/api/v1/experiments/{chain['id']}/stop/")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--grace", type=float, default=3.0)
    args = parser.parse_args()
    results = run(args.rounds, args.grace)
    targets = {
        "submit_to_running": 1.0,
        "suspend_to_free_cooperative": args.grace + 1,
        "suspend_to_free_ignoring": args.grace + 1,
    }
    print(f"lifecycle on the embedded profile (2-node jobs, grace {args.grace:g} s)")
    print(f"{'measure':34} {'n':>3} {'median s':>9} {'p95 s':>7} {'max s':>7} {'target s':>9}")
    for name, values in results.items():
        if not values:
            continue
        print(
            f"{name:34} {len(values):>3} {statistics.median(values):>9.3f} {percentile(values, 0.95):>7.3f} "
            f"{max(values):>7.3f} {targets[name]:>9.1f}"
        )


if __name__ == "__main__":
    main()
