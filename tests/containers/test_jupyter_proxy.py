"""A real JupyterLab per container, reached only through the portal's proxy (HTTP and websockets).

One JupyterLab is started for the whole story (starting one takes seconds): the owner opens the
lab page and runs ``1+1`` in a kernel over its websocket through the proxy; another user gets 404,
an anonymous visitor is sent to sign in; cross-site requests are refused; one service restarts;
the container stops and its processes are gone.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
from django.test import Client

from apps.containers import services
from apps.containers.choices import ContainerStatus
from apps.containers.models import Container
from tests.conftest import wait_until


def processes_with(needle: str) -> list[int]:
    """Live processes whose command line contains ``needle`` (a kernel: its connection file)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def session_cookie(user) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


async def run_cell(ws_url: str, cookies: dict[str, str], origin: str, code: str) -> str:
    from websockets.asyncio.client import connect

    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    async with connect(ws_url, additional_headers={"Cookie": cookie}, origin=origin, open_timeout=20) as ws:  # type: ignore[arg-type]
        msg_id = uuid.uuid4().hex
        await ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": "2026-01-01T00:00:00Z",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "execute_result":
                return message["content"]["data"]["text/plain"]
            if message["msg_type"] == "error":
                raise AssertionError(message["content"])


def test_owner_uses_jupyterlab_through_the_proxy_and_nobody_else_can(
    live_containers, jupyter, user, other_user, admin_user
):
    base = live_containers.url
    c = services.container_create(actor=user, name="lab", node_group=jupyter.group, cpu=1, memory_gib=1)
    wait_until(
        lambda: Container.objects.get(pk=c.pk).status in (ContainerStatus.RUNNING, ContainerStatus.FAILED),
        timeout=90,
        message="JupyterLab to answer",
    )
    c.refresh_from_db()
    assert c.status == ContainerStatus.RUNNING, c.status_message
    url = f"{base}/containers/{user.username}/lab/"
    owner = session_cookie(user)

    # The owner: the lab page, no token anywhere in the URL.
    page = httpx.get(f"{url}lab", cookies=owner, timeout=30)
    assert page.status_code == 200
    assert "JupyterLab" in page.text
    status = httpx.get(f"{url}api/status", cookies=owner, timeout=30)
    assert status.status_code == 200 and "started" in status.json()

    # Unsafe requests must come from this site.
    refused = httpx.post(f"{url}api/kernels", cookies=owner, json={"name": "python3"}, timeout=30)
    assert refused.status_code == 403
    kernel = httpx.post(
        f"{url}api/kernels", cookies=owner, json={"name": "python3"}, headers={"Origin": base}, timeout=60
    )
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    ws_url = f"{url.replace('http://', 'ws://')}api/kernels/{kernel_id}/channels"
    assert asyncio.run(run_cell(ws_url, owner, base, "1+1")) == "2"

    # A terminal works through the proxy too.
    terminal = httpx.post(f"{url}api/terminals", cookies=owner, headers={"Origin": base}, timeout=30)
    assert terminal.status_code == 200, terminal.text

    # Another user: 404, as if it did not exist; the websocket is refused as well.
    other = session_cookie(other_user)
    assert httpx.get(f"{url}lab", cookies=other, timeout=30).status_code == 404
    assert httpx.get(f"{url}api/kernels", cookies=other, timeout=30).status_code == 404
    with pytest.raises(Exception):
        asyncio.run(run_cell(ws_url, other, base, "1+1"))

    # Anonymous: sent to sign in; the websocket refused.
    anonymous = httpx.get(f"{url}lab", timeout=30)
    assert anonymous.status_code == 302
    assert anonymous.headers["location"] == f"/login/?next=/containers/{user.username}/lab/lab"
    with pytest.raises(Exception):
        asyncio.run(run_cell(ws_url, {}, base, "1+1"))

    # A websocket from another site is refused even with the owner's cookie.
    with pytest.raises(Exception):
        asyncio.run(run_cell(ws_url, owner, "http://evil.example", "1+1"))

    # An admin may open it.
    assert httpx.get(f"{url}api/status", cookies=session_cookie(admin_user), timeout=30).status_code == 200

    # Restart JupyterLab alone: it comes back on the same address with the same token. It is told
    # to terminate, not killed: it shuts down cleanly (its server file goes with it), and its
    # kernel, in a session of its own, does not outlive it.
    from apps.launcher.backends import get_container_backend

    runtime = get_container_backend().runs.run_dir(c.pk * 1_000_000 + c.run) / "jupyter-runtime"
    old_server_files = sorted(runtime.glob("jpserver-*.json"))
    assert len(old_server_files) == 1
    assert len(processes_with(f"kernel-{kernel_id}.json")) == 1
    services.container_restart_service(actor=user, container=c, service="jupyter")
    wait_until(lambda: Container.objects.get(pk=c.pk).restart_services == [], timeout=30, message="restart")
    assert processes_with(f"kernel-{kernel_id}.json") == []
    assert not old_server_files[0].exists()
    wait_until(
        lambda: httpx.get(f"{url}api/status", cookies=owner, timeout=5).status_code == 200,
        timeout=60,
        message="JupyterLab back after the restart",
    )
    # The log store has JupyterLab's output.
    from apps.launcher.backends import get_container_log_store

    store = get_container_log_store()
    key = c.pk * 1_000_000 + c.run
    assert "Jupyter Server" in store.read(str(c.pk), key, 0, limit=1 << 20).data

    # Stop: the proxy answers 503 and the processes end.
    services.container_stop(actor=user, container=c)
    wait_until(lambda: Container.objects.get(pk=c.pk).status == ContainerStatus.STOPPED, timeout=60, message="stopped")
    assert httpx.get(f"{url}lab", cookies=owner, timeout=30).status_code == 503
    assert get_container_backend().known_runs() == set()
