"""Development containers on the embedded profile: the proxy's added latency and the start-up time.

    .venv/bin/python -m bench.containers [--requests 400] [--rounds 5]

Starts daphne on a free port with a fresh data directory (``bench.lifecycle.embedded_server``:
SQLite, in-process passes, the local backend, the example cluster), signs in as the demo user
and creates a container (a real JupyterLab), then measures:

- **proxy added latency**: the same JupyterLab request (``GET api/contents``, a directory listing)
  sent alternately straight to JupyterLab (with the run's token) and through the portal's proxy
  (``/containers/alice/<name>/…`` with the session cookie), one keep-alive client each. Reported:
  p50/p95 of each path and of the paired difference (proxied − direct, request by request).
  Target: ≤ 20 ms p95 added.
- **the portal's floor**: the same request for a container that does not exist, which the proxy
  answers itself (404) after the session and container lookup: what daphne and the lookup cost
  without the forwarding hop.
- **start-up**: from the API's "start" to JupyterLab answering through the proxy (the user can
  use it), then a stop that waits for the processes to end, ``--rounds`` times. Target ≤ 10 s.

It prints the host's load average and the time of a 10M-step Python loop (to compare hosts), and
cleans up its server, containers and directory, and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.lifecycle import ROOT, embedded_server, percentile, wait_for

PASSWORD = "bench-pass-123"
NAME = "bench"


def sign_in(url: str) -> httpx.Client:
    """A browser-like client with the portal's session cookie."""
    session = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
    session.get("/login/")
    csrf = session.cookies["csrftoken"]
    response = session.post(
        "/login/",
        data={"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{url}/login/"},
    )
    if response.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"sign-in failed: {response.status_code}")
    return session


def run_facts(data: Path, container_id: int) -> tuple[str, str]:
    """(JupyterLab's address, the run's token), read the way the portal does, in a subprocess
    with the server's settings (the token is derived from its SECRET_KEY)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(ROTA_ENV="embedded", ROTA_DATA_DIR=str(data), DJANGO_SETTINGS_MODULE="portal.settings")
    code = (
        "import django, json; django.setup()\n"
        "from apps.containers.models import Container\n"
        "from apps.containers.tokens import container_token\n"
        f"c = Container.objects.get(pk={container_id})\n"
        "print(json.dumps([c.endpoints['jupyter'], container_token(c.pk, c.run)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    address, token = json.loads(out.strip().splitlines()[-1])
    return str(address), str(token)


def status_of(api: httpx.Client, container_id: int) -> str:
    return str(api.get(f"/api/v1/containers/{container_id}/").json()["status"])


def proxy_latency(url: str, session: httpx.Client, address: str, token: str, requests: int) -> dict[str, list[float]]:
    path = f"/containers/alice/{NAME}/api/contents"
    direct = httpx.Client(base_url=f"http://{address}", timeout=30, headers={"Authorization": f"token {token}"})
    times: dict[str, list[float]] = {"direct": [], "proxied": [], "added": [], "floor": []}
    floor_path = f"/containers/alice/{NAME}-none/api/contents"
    try:
        for _ in range(20):  # warm both paths (connections, JupyterLab's caches)
            direct.get(path).raise_for_status()
            session.get(path).raise_for_status()
        for i in range(requests):
            pair: dict[str, float] = {}
            order = ("direct", "proxied") if i % 2 == 0 else ("proxied", "direct")
            for which in order:
                client = direct if which == "direct" else session
                began = time.perf_counter()
                response = client.get(path)
                elapsed = (time.perf_counter() - began) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{which} request answered {response.status_code}")
                pair[which] = elapsed
            times["direct"].append(pair["direct"])
            times["proxied"].append(pair["proxied"])
            times["added"].append(pair["proxied"] - pair["direct"])
            began = time.perf_counter()
            if session.get(floor_path).status_code != 404:
                raise RuntimeError("a container that does not exist did not answer 404")
            times["floor"].append((time.perf_counter() - began) * 1000)
    finally:
        direct.close()
    return times


def start_up(url: str, api: httpx.Client, session: httpx.Client, container_id: int, rounds: int) -> list[float]:
    path = f"/containers/alice/{NAME}/api/status"
    results = []
    for _ in range(rounds):
        api.post(f"/api/v1/containers/{container_id}/stop/").raise_for_status()
        wait_for(lambda: status_of(api, container_id) == "stopped", 60, "the container to stop", interval=0.05)
        began = time.perf_counter()
        api.post(f"/api/v1/containers/{container_id}/start/").raise_for_status()
        wait_for(lambda: session.get(path).status_code == 200, 120, "JupyterLab through the proxy", interval=0.05)
        results.append(time.perf_counter() - began)
    return results


def _kill_containers(data: Path) -> None:
    """Stop every container run still alive in the bench's data directory (before it is removed)."""
    sys.path.insert(0, str(ROOT))
    from apps.launcher.backends.container_local import LocalContainerBackend
    from apps.logs.store import LogStore

    backend = LocalContainerBackend(data / "containers", LogStore(data / "logs" / "containers"))
    for container_id, run_no in backend.known_runs():
        backend.stop(container_id, run_no)
        backend.wait_stopped(container_id, run_no, timeout=20)


def run(requests: int, rounds: int) -> dict[str, Any]:
    with embedded_server(grace=3.0) as (url, token, data):
        api = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})
        session = sign_in(url)
        try:
            began = time.perf_counter()
            created = api.post(
                "/api/v1/containers/",
                json={"name": NAME, "node_group": "jupyter_cpu", "cpu": 1, "memory_gib": 1},
            )
            if created.status_code != 201:
                raise RuntimeError(f"create answered {created.status_code}: {created.text}")
            container_id = int(created.json()["id"])
            wait_for(
                lambda: session.get(f"/containers/alice/{NAME}/api/status").status_code == 200,
                120,
                "the first start",
                interval=0.05,
            )
            first = time.perf_counter() - began
            address, run_token = run_facts(data, container_id)
            latency = proxy_latency(url, session, address, run_token, requests)
            starts = start_up(url, api, session, container_id, rounds)
            api.delete(f"/api/v1/containers/{container_id}/")
            wait_for(lambda: api.get(f"/api/v1/containers/{container_id}/").status_code == 404, 30, "the delete")
        finally:
            api.close()
            session.close()
            _kill_containers(data)
    return {"first_start": first, "latency": latency, "starts": starts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = run(args.requests, args.rounds)
    load = os.getloadavg()
    began = time.perf_counter()
    for _ in range(10_000_000):
        pass
    loop = time.perf_counter() - began
    print(
        f"host: {platform.node()} · {os.cpu_count()} CPUs · load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
        f" · 10M-step loop {loop:.2f} s"
    )
    print("| measure | p50 | p95 | max | target |\n|---|--:|--:|--:|--:|")
    latency = result["latency"]
    for key, label in (
        ("direct", "JupyterLab direct, ms"),
        ("proxied", "through the proxy, ms"),
        ("floor", "portal floor: the proxy's own 404, ms"),
    ):
        values = latency[key]
        print(f"| {label} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} | {max(values):.1f} | |")
    added = latency["added"]
    p95_gap = percentile(latency["proxied"], 0.95) - percentile(latency["direct"], 0.95)
    print(
        f"| added by the proxy (paired), ms | {statistics.median(added):.1f} | {percentile(added, 0.95):.1f} |"
        f" {max(added):.1f} | ≤ 20 p95 |"
    )
    print(f"| p95 proxied − p95 direct, ms | | {p95_gap:.1f} | | ≤ 20 |")
    starts = result["starts"]
    print(
        f"| start → usable through the proxy, s ({len(starts)} restarts) | {statistics.median(starts):.2f} |"
        f" {percentile(starts, 0.95):.2f} | {max(starts):.2f} | ≤ 10 |"
    )
    print(f"| create → usable (first start), s | {result['first_start']:.2f} | | | |")
    print(f"requests per path: {len(added)}")


if __name__ == "__main__":
    main()
