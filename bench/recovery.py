"""Recovery after a crash: submit → running once a server killed mid-pass is restarted.

    .venv/bin/python -m bench.recovery [--rounds 3]

Issue 12 item 6: leases of a dead process used to be honoured until they expired, so after a
kill -9 and a restart jobs waited 59–120 s to start. This bench starts the embedded profile (daphne,
in-process scheduler and launcher, local backend, the example cluster) as ``bench.lifecycle`` does,
kills the server with SIGKILL, leaves its scheduling, reconcile and cluster-owner leases held in its
name as a crash in the middle of those passes would, restarts the server on the same data, and times
``POST /api/v1/experiments/`` until the job runs. Three cases:

- **same host**: the dead holder was on this machine (the usual single-server install): taken over
  at once (host + pid + process start time). Target ≤ 5 s.
- **other host**: the holder was on another machine and cannot be checked: its leases run out
  within ``LIVENESS_SECONDS`` (15 s) because live holders renew them; they are planted here with
  that much left, the worst case.
- **clean**: no lease left behind (a graceful restart), for reference.

It cleans up its servers, jobs and directory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.lifecycle import ROOT, _kill_jobs, _up, free_port, wait_for

LEASES = {"scheduler": 60, "launcher": 120, "cluster-owner": 30}
"""The leases a server holds during its passes, with the seconds a holder takes them for."""

JOB = """
import time
print("up", flush=True)
time.sleep(600)
"""


def _env(data: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "ROTA_ENV"}}
    env.update(
        ROTA_ENV="embedded",
        ROTA_DATA_DIR=str(data),
        ROTA_DEMO_PASSWORD="bench-pass-123",
        DJANGO_SETTINGS_MODULE="portal.settings",
        ROTA_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    return env


@contextlib.contextmanager
def server(data: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"],
        cwd=ROOT,
        env=_env(data, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(url), 60, "the server")
        yield url, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def plant_leases(data: Path, holder: str, seconds_left: float | None) -> None:
    """Leave the passes' leases held by ``holder``, as a crash in the middle of them would."""
    now = datetime.now(UTC)
    with sqlite3.connect(data / "rota.sqlite3") as db:
        for name, ttl in LEASES.items():
            left = ttl if seconds_left is None else seconds_left
            expires = (now + timedelta(seconds=left)).strftime("%Y-%m-%d %H:%M:%S.%f")
            db.execute(
                "INSERT INTO core_lease (name, holder, expires_at, rerun_requested) VALUES (?, ?, ?, 0)"
                " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                (name, holder, expires),
            )


def one_round(data: Path, case: str, round_no: int) -> float:
    from apps.core import leases

    with server(data) as (url, proc):
        ticks = leases._process_start_ticks(proc.pid)
    # The server is gone (SIGKILL). Its leases, as a crash mid-pass leaves them:
    if case == "same host":
        plant_leases(data, f"{leases._host()}:{proc.pid}:{leases._boot_id()}:{ticks}:1:deadbeef", None)
    elif case == "other host":
        plant_leases(data, f"another-host:{proc.pid}:00000000:{ticks}:1:deadbeef", leases.LIVENESS_SECONDS)
    with server(data) as (url, _proc):
        token = httpx.post(
            f"{url}/api/v1/auth/token/", json={"username": "alice", "password": "bench-pass-123"}, timeout=10
        ).json()["token"]
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        body = {
            "name": f"recovery-{case.replace(' ', '-')}-{round_no}",
            "workspace": str(data / "ws"),
            "entrypoint": "job.py",
            "group": "training",
            "nodes": 1,
            "priority": "NORMAL",
        }
        began = time.perf_counter()
        chain = client.post("/api/v1/experiments/", json=body).json()
        wait_for(
            lambda: client.get(f"/api/v1/experiments/{chain['id']}/").json()["status"] == "running", 120, "running"
        )
        elapsed = time.perf_counter() - began
        client.post(f"/api/v1/experiments/{chain['id']}/stop/")
        wait_for(
            lambda: client.get(f"/api/v1/experiments/{chain['id']}/").json()["status"] in {"stopped", "canceled"},
            60,
            "stopped",
        )
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import shutil
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="rota-recovery-"))
    try:
        env = _env(data, 8000)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [sys.executable, "manage.py", "rota_bootstrap", "examples/cluster.toml"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        os.environ.update(_env(data, 8000))  # this process reads lease helpers and settings only
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from apps.core import leases

        (data / "ws").mkdir()
        (data / "ws" / "job.py").write_text(textwrap.dedent(JOB))
        results: dict[str, list[float]] = {"same host": [], "other host": [], "clean": []}
        for round_no in range(args.rounds):
            for case in results:
                results[case].append(one_round(data, case, round_no))
        load = os.getloadavg()[0]
        print(f"recovery after kill -9, embedded profile ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load:.1f})")
        print(f"{'case':12} {'n':>3} {'median s':>9} {'max s':>7} {'target s':>9}")
        targets = {"same host": 5.0, "other host": leases.LIVENESS_SECONDS + 5.0, "clean": 5.0}
        missed = False
        for case, values in results.items():
            missed |= max(values) > targets[case]
            median, worst = statistics.median(values), max(values)
            print(f"{case:12} {len(values):>3} {median:>9.2f} {worst:>7.2f} {targets[case]:>9.1f}")
        print("verdict:", "MISSED" if missed else "met")
        sys.exit(1 if missed else 0)
    finally:
        _kill_jobs(data)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
