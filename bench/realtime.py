"""Live logs and events through daphne on the production stack (Postgres + Redis pub/sub).

    .venv/bin/python -m bench.realtime [--viewers 1,50,200] [--processes 1] [--clients 0] [--port 0]
                                       [--seconds 10] [--rate 20] [--flood-mb 40]

Creates a scratch database (migrated), a user with a token and a running one-node job (rows
written directly), starts ``--processes`` daphne processes (``ROTA_ENV=production``, Redis
channel layer; ports from ``--port`` on, or free ones) with the viewers spread across them in
turn, as behind a load balancer. The viewers run in ``--clients`` processes of their own (0: one
per 250 viewers, at most 4), each reading its share of the sockets, so that the clients' own queue
is not what is measured; latency is receive time − write/send time on the host's one clock. Then:

1. **Log follow** — for each N: N websocket viewers follow rank 0 on ``/ws/logs/<chain>/0/``
   (token in the subprotocol, ``{"tail": 0}``); a writer appends timestamped lines to the log store
   file at a steady rate (as a rank supervisor does, from another process than the server) for
   ``--seconds``. Prints p50 / p95 / max write → receive latency over every (line, viewer), lines
   lost (expected − received, per viewer, summed), duplicates and ``log.behind`` messages, the
   servers' and the clients' CPU (fractions of one core), the servers' CPU time per message
   delivered to a socket (µs: the server-side cost, whatever the host's load) and the load average.
2. **Events** — the same N viewers on ``/ws/events/``; the bench sends ``chain.status`` events
   through ``portal.realtime.send_event_on_commit`` (Redis) at 10/s, from a process of their own;
   prints p50 / p95 / max latency, lost, duplicates and the same costs.
3. **Stalled viewer** (``--flood-mb``) — one viewer whose client stops reading (tiny receive
   buffer) and one normal viewer, while the job writes ``--flood-mb`` MB as fast as it can. The
   normal viewer must get every line; the stalled one must be told ``log.behind`` once it reads
   again; the server's memory must not grow by the flood's size (on the first server).

The closing verdict lists every target with its figure and exits 1 if any is missed: nothing lost
and no duplicate in any table; p95 ≤ 250 ms up to 200 viewers per process, ≤ 500 ms up to 500
per process (the issue's "200 viewers on one process" and "1,000 across 2"); the stalled-viewer
checks. It prints the host's load average and the time of a 10M-step Python loop first, to
compare hosts. It drops the database, stops the servers and removes their files when done (or
interrupted). ``ROTA_BENCH_PG``, ``ROTA_BENCH_DB`` and ``ROTA_BENCH_REDIS`` choose where.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.host import host_figures

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = os.environ.get("ROTA_BENCH_DB", "rota_bench_realtime")
PG_ADMIN_URL = os.environ.get("ROTA_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ROTA_BENCH_REDIS", "redis://127.0.0.1:6379/14")
MARK = "bench-line"


# --- setup ------------------------------------------------------------------------------------


def _environment(data: Path) -> dict[str, str]:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return {
        "ROTA_ENV": "production",
        "DATABASE_URL": f"{base}/{BENCH_DB}",
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "ROTA_TASK_RUNNER": "inline",
        "ROTA_DATA_DIR": str(data),
        "ROTA_LOG_ROOT": str(data / "logs"),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "LOG_LEVEL": "WARNING",
    }


def _recreate_database(drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


@dataclass
class Fixture:
    token: str
    user_id: int
    chain_id: int
    attempt_id: int


def _create_rows() -> Fixture:
    from apps.accounts import services as account_services
    from apps.accounts.models import User
    from apps.cluster.models import NodeGroup
    from apps.experiments.choices import ChainStatus, QueueStatus, WorkerStatus
    from apps.experiments.models import Attempt, Chain

    user = User.objects.create(username="bench")
    token = account_services.token_create(actor=user, name="bench", scope="read_only").raw
    group = NodeGroup.objects.create(name="training")
    chain = Chain.objects.create(
        owner=user,
        name="bench-job",
        workspace="/tmp",
        entrypoint="train.py",
        node_group=group,
        node_count=1,
        environment_name="default",
        status=ChainStatus.RUNNING,
    )
    attempt = Attempt.objects.create(
        chain=chain, index=0, priority=10, queue_status=QueueStatus.SCHEDULED, worker_status=WorkerStatus.RUNNING
    )
    Chain.objects.filter(pk=chain.pk).update(latest_attempt=attempt)
    return Fixture(token, user.pk, chain.pk, attempt.pk)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError("daphne did not start")


@dataclass
class Servers:
    """The daphne processes: viewer ``i`` connects to ``ports[i % len(ports)]``."""

    ports: list[int]
    pids: list[int]
    reconnects: int = 0
    """Handshakes a busy server dropped and the bench retried (printed with the verdict)."""

    def url(self, i: int, path: str) -> str:
        return f"ws://127.0.0.1:{self.ports[i % len(self.ports)]}{path}"

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(pid) for pid in self.pids)

    def rss_mb(self) -> float:
        return sum(process_rss_mb(pid) for pid in self.pids)


@contextlib.contextmanager
def production_servers(processes: int, base_port: int) -> Iterator[tuple[Servers, Fixture]]:
    """Scratch database + ``processes`` daphne processes; yields (servers, fixture)."""
    data = Path(tempfile.mkdtemp(prefix="rota-bench-rt-"))
    env = _environment(data)
    os.environ.update(env)
    started: list[subprocess.Popen[bytes]] = []
    try:
        _recreate_database()
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        fixture = _create_rows()
        ports = [base_port + i if base_port else _free_port() for i in range(processes)]
        for i, port in enumerate(ports):
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"],
                    cwd=ROOT,
                    env={**os.environ, **env},
                    stdout=subprocess.DEVNULL,
                    stderr=open(data / f"daphne-{i}.log", "wb"),  # noqa: SIM115 - closed with the process
                    start_new_session=True,
                )
            )
        for port in ports:
            _wait_for_port(port, 30)
        yield Servers(ports, [server.pid for server in started]), fixture
    except BaseException:
        for log in sorted(data.glob("daphne-*.log")):
            with contextlib.suppress(OSError):
                print(f"--- {log.name} (tail) ---\n" + log.read_text()[-6000:], file=sys.stderr)
        raise
    finally:
        for server in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
        for server in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        _recreate_database(drop_only=True)
        shutil.rmtree(data, ignore_errors=True)


# --- measuring ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Viewer:
    ws: Any
    seqs: set[int] = field(default_factory=set)
    duplicates: int = 0
    split: int = 0
    behind: int = 0
    latencies: list[float] = field(default_factory=list)


def _protocols(token: str) -> tuple[str, str]:
    return ("rota.v1", f"rota.token.{token}")


# --- the viewers' processes -------------------------------------------------------------------------
#
# The simulated viewers run in ``--clients`` processes of their own (``--client``), each with an
# event loop, an aiohttp session and its share of the viewers (viewer ``i`` in process ``i % K``,
# on server ``i % processes``): 1,000 sockets in one Python process queue their own messages behind
# each other, and that queue was part of every latency measured. Each viewer stamps a message with
# ``time.time()`` when its process reads it; the writer and the event sender stamp with the same
# clock (one host), so latency is receive − send whatever process did either. A client process
# talks to the bench over its stdin (commands) and stdout (one JSON object a line, with ``state``).


async def _open_viewers(session: aiohttp.ClientSession, urls: list[str], token: str) -> tuple[list[Viewer], int]:
    """Connect one viewer per url (20 at a time); returns the viewers and the handshakes retried."""
    gate = asyncio.Semaphore(20)
    retried = 0

    async def one(url: str) -> Viewer:
        nonlocal retried
        async with gate:
            for attempt in range(5):
                try:
                    ws = await session.ws_connect(url, protocols=_protocols(token), max_msg_size=0, heartbeat=None)
                    return Viewer(ws)
                except aiohttp.ClientOSError:  # a handshake the busy server dropped: retry, as clients do
                    retried += 1
                    await asyncio.sleep(0.5 * (attempt + 1))
                except aiohttp.WSServerHandshakeError as exc:
                    # 403: daphne gave up on a handshake the application had not answered within its
                    # connect timeout (5 s; a starved host). The token is valid: retry, as clients do.
                    if exc.status != 403:
                        raise
                    retried += 1
                    await asyncio.sleep(0.5 * (attempt + 1))
            raise ConnectionError(f"could not connect a viewer to {url} in 5 attempts")

    viewers = list(await asyncio.gather(*(one(url) for url in urls)))
    return viewers, retried


async def _read_log(viewer: Viewer, stop: asyncio.Event, first: int) -> None:
    """Record this phase's lines (seq >= ``first``; -1 is the warm-up)."""
    async for message in viewer.ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        now = time.time()
        body = json.loads(message.data)
        if body["type"] == "log.behind":
            viewer.behind += 1
            continue
        if body["type"] != "log.lines":
            continue
        for line in body["data"].splitlines():
            at = line.find(MARK)
            if at < 0:
                continue
            try:
                _, seq_text, sent_text = line[at:].split(" ", 3)[:3]
                seq, sent = int(seq_text), float(sent_text)
            except ValueError:  # half a line (a defect, counted as a split and as a lost line)
                viewer.split += 1
                continue
            if seq != -1 and seq < first:  # an earlier phase's line: sent again (must not happen)
                viewer.duplicates += 1
                continue
            if seq >= first and seq in viewer.seqs:
                viewer.duplicates += 1
            viewer.seqs.add(seq)
            if seq >= first:
                viewer.latencies.append(now - sent)
        if stop.is_set():
            break


async def _count_late(viewer: Viewer, seen: set[int]) -> None:
    """Count events of this run that arrive again after a viewer had them all (until cancelled)."""
    while True:
        message = await viewer.ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            return
        body = json.loads(message.data)
        if body["type"] == "chain.status" and body["restart_count"] in seen:
            viewer.duplicates += 1


def _report(state: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"state": state, **fields}) + "\n")
    sys.stdout.flush()


async def _command() -> dict[str, Any]:
    line = await asyncio.to_thread(sys.stdin.readline)
    if not line:
        raise SystemExit("the bench went away")
    return dict(json.loads(line))


async def client_logs(spec: dict[str, Any], session: aiohttp.ClientSession) -> None:
    """A client process's log viewers: ``attached`` once each got a warm-up line, then, on
    ``drain``, wait up to 5 s for all ``count`` lines and report (``done``)."""
    first, count = spec["first"], spec["count"]
    viewers, retried = await _open_viewers(session, spec["urls"], spec["token"])
    for viewer in viewers:
        await viewer.ws.send_json({"tail": 0})
    stop = asyncio.Event()
    readers = [asyncio.create_task(_read_log(v, stop, first)) for v in viewers]
    _report("connected")
    while not all(-1 in v.seqs for v in viewers):
        await asyncio.sleep(0.05)
    _report("attached", cpu=time.process_time())
    await _command()  # drain: the writer is done
    deadline = time.monotonic() + 5  # whatever has not arrived 5 s after the last write is lost
    while time.monotonic() < deadline and not all(len(v.seqs) >= count + 1 for v in viewers):
        await asyncio.sleep(0.05)
    stop.set()
    for viewer in viewers:
        await viewer.ws.close()
    await asyncio.gather(*readers, return_exceptions=True)
    _report(
        "done",
        latencies=[x for v in viewers for x in v.latencies],
        lost=sum(count - len([s for s in v.seqs if s >= first]) for v in viewers),
        duplicates=sum(v.duplicates for v in viewers),
        split=sum(v.split for v in viewers),
        behind=sum(v.behind for v in viewers),
        retried=retried,
        cpu=time.process_time(),
        viewer_max=[max(v.latencies, default=0.0) for v in viewers],
        viewer_first=[v.latencies[0] if v.latencies else 0.0 for v in viewers],
    )


async def client_events(spec: dict[str, Any], session: aiohttp.ClientSession) -> None:
    """A client process's event viewers: ``ready`` once each subscribed to the chain; on ``drain``
    (with the send times) wait for the rest and report latencies, losses and duplicates."""
    first, count = spec["first"], spec["count"]
    viewers, retried = await _open_viewers(session, spec["urls"], spec["token"])
    for viewer in viewers:
        await viewer.ws.send_json({"action": "subscribe", "chain": spec["chain_id"]})
        reply = await viewer.ws.receive_json(timeout=30)
        assert reply["type"] == "subscribed", reply
    received_at: list[dict[int, float]] = [{} for _ in viewers]
    duplicates = 0

    async def read(i: int, viewer: Viewer) -> None:
        nonlocal duplicates
        got = received_at[i]
        while len(got) < count:
            message = await viewer.ws.receive(timeout=15)
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            now = time.time()
            body = json.loads(message.data)
            if body["type"] == "chain.status" and first <= body["restart_count"] < first + count:
                if body["restart_count"] in got:
                    duplicates += 1
                else:
                    got[body["restart_count"]] = now

    readers = [asyncio.create_task(read(i, v)) for i, v in enumerate(viewers)]
    _report("ready", cpu=time.process_time())
    sent_at = {int(seq): at for seq, at in (await _command())["sent_at"].items()}
    await asyncio.gather(*readers, return_exceptions=True)
    with contextlib.suppress(asyncio.TimeoutError):  # a duplicate would come right after
        await asyncio.wait_for(
            asyncio.gather(*(_count_late(v, set(received_at[i])) for i, v in enumerate(viewers))), 0.5
        )
    for viewer in viewers:
        await viewer.ws.close()
    _report(
        "done",
        latencies=[at - sent_at[seq] for got in received_at for seq, at in got.items()],
        lost=len(viewers) * count - sum(len(got) for got in received_at),
        duplicates=duplicates + sum(v.duplicates for v in viewers),
        retried=retried,
        cpu=time.process_time(),
    )


async def client_main() -> None:
    """``--client``: one process of simulated viewers; its spec is the first line on stdin."""
    spec = await _command()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await (client_logs if spec["phase"] == "logs" else client_events)(spec, session)


class Clients:
    """The client processes of one phase, seen from the bench: their states, commands and CPU."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self.processes = processes
        self.states: list[dict[str, dict[str, Any]]] = [{} for _ in processes]
        self._changed = asyncio.Event()
        self._readers = [asyncio.create_task(self._read(i, p)) for i, p in enumerate(processes)]

    @classmethod
    async def start(cls, servers: Servers, phase: str, path: str, n: int, k: int, spec: dict[str, Any]) -> Clients:
        k = max(1, min(k, n))
        processes = []
        for w in range(k):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.realtime",
                "--client",
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 28,  # a report carries every latency measured
            )
            # Viewer i: server i % P, client process (i // P) % K — each process talks to every server.
            urls = [servers.url(i, path) for i in range(n) if (i // len(servers.ports)) % k == w]
            assert process.stdin is not None
            process.stdin.write((json.dumps({**spec, "phase": phase, "urls": urls}) + "\n").encode())
            await process.stdin.drain()
            processes.append(process)
        return cls(processes)

    async def _read(self, i: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            message = json.loads(line)
            self.states[i][message["state"]] = message
            self._changed.set()
        self._changed.set()

    def all_in(self, state: str) -> bool:
        return all(state in states for states in self.states)

    async def wait_for(self, state: str, timeout: float) -> list[dict[str, Any]]:
        """Every process's report of ``state``; raises if one exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not self.all_in(state):
            if any(
                p.returncode is not None and state not in s for p, s in zip(self.processes, self.states, strict=True)
            ):
                raise RuntimeError(f"a client process exited before {state!r}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, min(1.0, deadline - time.monotonic())))
            if time.monotonic() > deadline:
                raise TimeoutError(f"client processes did not all reach {state!r}")
        return [states[state] for states in self.states]

    async def command(self, **command: Any) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write((json.dumps(command) + "\n").encode())
            await process.stdin.drain()

    def cpu_seconds(self, start: str, end: str) -> float:
        """The CPU time the client processes used between two of their states (as they report it:
        a process that has exited can no longer be read from outside)."""
        return sum(states[end]["cpu"] - states[start]["cpu"] for states in self.states)

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await process.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)


@contextlib.asynccontextmanager
async def client_processes(
    servers: Servers, phase: str, path: str, n: int, k: int, spec: dict[str, Any]
) -> AsyncIterator[Clients]:
    clients = await Clients.start(servers, phase, path, n, k, spec)
    try:
        yield clients
    finally:
        await clients.close()


def _writer(store: Any, fixture: Fixture, rate: float, seconds: float, first_seq: int) -> int:
    """Append lines at a steady rate (its own thread, like a rank supervisor); returns the count."""
    count = int(rate * seconds)
    interval = 1.0 / rate
    start = time.monotonic()
    with store.writer(str(fixture.chain_id), fixture.attempt_id, 0) as writer:
        for i in range(count):
            target = start + i * interval
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            writer.write_line(f"step {i} loss=0.{i % 1000:03d} {MARK} {first_seq + i} {time.time():.6f}")
    return count


def _costs(servers: Servers, client_seconds: float, cpu0: float, wall0: float, deliveries: int) -> dict[str, Any]:
    """CPU of the servers and of the clients over the measured window (fractions of one core), and
    the servers' CPU time per message delivered to a socket (µs)."""
    wall = time.monotonic() - wall0
    server = servers.cpu_seconds() - cpu0
    return {
        "server_cpu": server / wall,
        "client_cpu": client_seconds / wall,
        "server_us_per_message": server / deliveries * 1e6 if deliveries else float("nan"),
        "load": os.getloadavg()[0],
    }


async def bench_logs(servers: Servers, fixture: Fixture, n: int, rate: float, seconds: float, k: int) -> dict[str, Any]:
    from apps.logs.store import LogStore

    store = LogStore(Path(os.environ["ROTA_LOG_ROOT"]))
    first = n * 1_000_000  # sequence numbers unique to this phase
    count = int(rate * seconds)
    spec = {"token": fixture.token, "first": first, "count": count}
    async with client_processes(servers, "logs", f"/ws/logs/{fixture.chain_id}/0/", n, k, spec) as clients:
        await clients.wait_for("connected", 60 + n / 5)
        # Warm-up lines (seq -1) until every viewer got one: then all of them follow live.
        deadline = time.monotonic() + 30 + n / 10  # joining is not what is measured; a busy host is slow at it
        while not clients.all_in("attached"):
            if time.monotonic() > deadline:
                raise TimeoutError("viewers did not all attach")
            store.append_lines(str(fixture.chain_id), fixture.attempt_id, 0, [f"warm-up {MARK} -1 {time.time():.6f}"])
            with contextlib.suppress(TimeoutError):
                await clients.wait_for("attached", 0.5)
        cpu0, wall0 = servers.cpu_seconds(), time.monotonic()
        written = await asyncio.to_thread(_writer, store, fixture, rate, seconds, first)
        assert written == count
        await clients.command(cmd="drain")
        reports = await clients.wait_for("done", 60)
        latencies = [x for r in reports for x in r["latencies"]]
        costs = _costs(servers, clients.cpu_seconds("attached", "done"), cpu0, wall0, len(latencies))
    servers.reconnects += sum(r["retried"] for r in reports)
    return {
        "viewers": n,
        "clients": len(reports),
        "lines": count,
        "deliveries": len(latencies),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "max_ms": max(latencies) * 1000 if latencies else float("nan"),
        **{key: sum(r[key] for r in reports) for key in ("lost", "duplicates", "split", "behind")},
        **costs,
        "server_rss_mb": servers.rss_mb(),
        "viewer_max": sorted(x for r in reports for x in r["viewer_max"]),
        "viewer_first": [x for r in reports for x in r["viewer_first"]],
    }


async def bench_events(
    servers: Servers, fixture: Fixture, n: int, k: int, count: int = 50, rate: float = 10.0
) -> dict[str, Any]:
    first = n * 1000  # restart_count values unique to this phase
    spec = {"token": fixture.token, "first": first, "count": count, "chain_id": fixture.chain_id}
    async with client_processes(servers, "events", "/ws/events/", n, k, spec) as clients:
        await clients.wait_for("ready", 60 + n / 5)
        cpu0, wall0 = servers.cpu_seconds(), time.monotonic()
        # The events come from another process, as from a qcluster worker.
        sender = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.realtime",
            "--send-events",
            json.dumps({**dataclasses.asdict(fixture), "first": first, "count": count, "rate": rate}),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await sender.communicate()
        if sender.returncode != 0:
            raise RuntimeError(f"the event sender failed ({sender.returncode})")
        sent_at = json.loads(out.decode().splitlines()[-1])
        await clients.command(cmd="drain", sent_at=sent_at)
        reports = await clients.wait_for("done", 60)
        latencies = [x for r in reports for x in r["latencies"]]
        costs = _costs(servers, clients.cpu_seconds("ready", "done"), cpu0, wall0, len(latencies))
    servers.reconnects += sum(r["retried"] for r in reports)
    return {
        "viewers": n,
        "clients": len(reports),
        "events": count,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "max_ms": max(latencies) * 1000 if latencies else float("nan"),
        "lost": sum(r["lost"] for r in reports),
        "duplicates": sum(r["duplicates"] for r in reports),
        **costs,
    }


def send_events(spec: dict[str, Any]) -> dict[int, float]:
    """``--send-events``: send ``count`` chain.status events at ``rate``/s through the door, to
    both groups as services do; returns when each was sent (epoch seconds) by restart_count."""
    from apps.experiments.events import ChainStatusChanged
    from portal.realtime import chain_group, outbox, send_event_on_commit, user_group

    sent_at: dict[int, float] = {}
    start = time.monotonic()
    for i in range(spec["count"]):
        delay = start + i / spec["rate"] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        seq = spec["first"] + i
        sent_at[seq] = time.time()
        event = ChainStatusChanged(
            chain_id=spec["chain_id"],
            attempt_id=spec["attempt_id"],
            status="running",
            worker_status="running",
            restart_count=seq,
            owner_id=spec["user_id"],
        )
        send_event_on_commit([user_group(spec["user_id"]), chain_group(spec["chain_id"])], event)
    outbox.flush(30.0)
    return sent_at


# --- the stalled viewer ---------------------------------------------------------------------------


class RawSocketViewer:
    """A websocket client written by hand so that it can stop reading (tiny receive buffer)."""

    def __init__(self, port: int, path: str, token: str) -> None:
        self.port, self.path, self.token = port, path, token

    async def connect(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: rota.v1, rota.token.{self.token}\r\n\r\n"
            ).encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head[:100]

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        assert len(payload) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    async def receive_text(self) -> str:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(length)
        if first & 0x0F == 0x8:
            raise ConnectionError("closed")
        return payload.decode()

    def close(self) -> None:
        self.writer.close()


async def bench_stalled(servers: Servers, fixture: Fixture, megabytes: int) -> dict[str, Any]:
    from apps.logs.store import LogStore

    port, pid = servers.ports[0], servers.pids[0]
    store = LogStore(Path(os.environ["ROTA_LOG_ROOT"]))
    path = f"/ws/logs/{fixture.chain_id}/0/"
    stalled = RawSocketViewer(port, path, fixture.token)
    await stalled.connect()
    stalled.send_text('{"tail": 0}')
    line = "x" * 200
    total = megabytes * 1024 * 1024 // (len(line) + 30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        normal = await session.ws_connect(
            f"ws://127.0.0.1:{port}{path}", protocols=_protocols(fixture.token), max_msg_size=0
        )
        await normal.send_json({"tail": 0})
        await asyncio.sleep(1.0)  # both attached (tail 0 needs no catch-up)
        rss0 = process_rss_mb(pid)
        peak = rss0
        got = 0
        normal_behind = 0

        async def read_normal() -> None:
            nonlocal got, normal_behind
            async for message in normal:
                body = json.loads(message.data)
                if body["type"] == "log.lines":
                    got += body["data"].count("\n")
                elif body["type"] == "log.behind":  # faster than it reads: resume (as the clients do)
                    normal_behind += 1
                    await normal.send_json({"cursor": body["cursor"]})
                if got >= total:
                    return

        reader = asyncio.create_task(read_normal())
        started = time.monotonic()

        def flood() -> None:
            with store.writer(str(fixture.chain_id), fixture.attempt_id, 0) as writer:
                for i in range(0, total, 1000):
                    writer.write_bytes("".join(f"{line} {j}\n" for j in range(i, min(total, i + 1000))).encode())

        flooding = asyncio.create_task(asyncio.to_thread(flood))
        while not reader.done():
            peak = max(peak, process_rss_mb(pid))
            await asyncio.sleep(0.1)
            if time.monotonic() - started > 120:
                raise TimeoutError(f"the normal viewer got {got} of {total} lines")
        await flooding
        elapsed = time.monotonic() - started
        await normal.close()
    # The stalled client reads again: it gets what the server had taken for it, then log.behind.
    behind = None
    received_bytes = 0
    with contextlib.suppress(TimeoutError, ConnectionError, asyncio.IncompleteReadError):
        while behind is None:
            text = await asyncio.wait_for(stalled.receive_text(), 10)
            received_bytes += len(text)
            body = json.loads(text)
            if body["type"] == "log.behind":
                behind = body["cursor"]
    stalled.close()
    return {
        "flood_mb": megabytes,
        "lines": total,
        "normal_got_all": got >= total,
        "normal_seconds": elapsed,
        "normal_behind": normal_behind,
        "stalled_behind_at": behind,
        "stalled_received_mb": received_bytes / 1024 / 1024,
        "server_rss_growth_mb": peak - rss0,
    }


# --- main ----------------------------------------------------------------------------------------


def p95_target_ms(viewers: int, processes: int) -> float | None:
    """The issue's latency targets: ≤ 250 ms up to 200 viewers a process, ≤ 500 ms up to 500."""
    per_process = viewers / processes
    if per_process <= 200:
        return 250.0
    if per_process <= 500:
        return 500.0
    return None


@dataclass
class Verdict:
    rows: list[tuple[str, str, bool]] = field(default_factory=list)

    def check(self, target: str, figure: str, ok: bool) -> None:
        self.rows.append((target, figure, ok))

    def latency(self, what: str, n: int, processes: int, p95_ms: float) -> None:
        limit = p95_target_ms(n, processes)
        if limit is not None:
            self.check(f"{what}, {n} viewers: p95 ≤ {limit:.0f} ms", f"{p95_ms:.1f} ms", p95_ms <= limit)

    def print(self) -> bool:
        width = max(len(target) for target, _, _ in self.rows)
        print("\nVerdict")
        for target, figure, ok in self.rows:
            print(f"  {'met    ' if ok else 'MISSED '} {target:<{width}}  {figure}")
        missed = sum(not ok for _, _, ok in self.rows)
        print(f"{len(self.rows) - missed} of {len(self.rows)} targets met" + (f"; {missed} MISSED" if missed else ""))
        return missed == 0


async def run_all(args: argparse.Namespace, servers: Servers, fixture: Fixture) -> bool:
    counts = [int(x) for x in args.viewers.split(",")]
    verdict = Verdict()
    where = ", ".join(f":{port} (pid {pid})" for port, pid in zip(servers.ports, servers.pids, strict=True))
    print(f"host: {host_figures()}")
    print(f"{len(servers.ports)} daphne process(es) {where}; Postgres db {BENCH_DB}; Redis {REDIS_URL}")
    print(
        f"\nLog follow: {args.rate:g} lines/s for {args.seconds:g} s, N viewers over {len(servers.ports)} process(es)"
    )
    costs_head = f" {'srv CPU':>8} {'cli CPU':>8} {'srv µs/msg':>10} {'load':>5}"
    print(
        f"{'N':>5} {'K':>3} {'lines':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'lost':>6} {'dup':>5}"
        f" {'split':>5} {'behind':>6}{costs_head} {'srv RSS':>8}"
    )
    for n in counts:
        r = await bench_logs(servers, fixture, n, args.rate, args.seconds, _client_count(args.clients, n))
        print(
            f"{n:>5} {r['clients']:>3} {r['lines']:>6} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['max_ms']:>8.1f}"
            f" {r['lost']:>6} {r['duplicates']:>5} {r['split']:>5} {r['behind']:>6}{_costs_row(r)}"
            f" {r['server_rss_mb']:>6.0f}MB"
        )
        verdict.check(f"log follow, {n} viewers: none lost, none twice, none split", _counts(r), _clean(r))
        verdict.latency("log follow", n, len(servers.ports), r["p95_ms"])
    print(
        f"\nEvents through Redis (chain.status to user.<id> and chain.<id>, 10/s),"
        f" over {len(servers.ports)} process(es)"
    )
    print(
        f"{'N':>5} {'K':>3} {'events':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'lost':>6} {'dup':>5}{costs_head}"
    )
    for n in counts:
        r = await bench_events(servers, fixture, n, _client_count(args.clients, n))
        print(
            f"{n:>5} {r['clients']:>3} {r['events']:>6} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['max_ms']:>8.1f}"
            f" {r['lost']:>6} {r['duplicates']:>5}{_costs_row(r)}"
        )
        verdict.check(f"events, {n} viewers: none lost, none twice", _counts(r), _clean(r))
        verdict.latency("events", n, len(servers.ports), r["p95_ms"])
    if args.flood_mb:
        r = await bench_stalled(servers, fixture, args.flood_mb)
        print(
            f"\nStalled viewer: {r['flood_mb']} MB written as fast as possible ({r['lines']} lines);"
            f" the normal viewer got all: {r['normal_got_all']} in {r['normal_seconds']:.1f} s"
            f" (resuming {r['normal_behind']} times after log.behind);"
            f" the stalled one was told log.behind at {r['stalled_behind_at']} after"
            f" {r['stalled_received_mb']:.1f} MB; server RSS grew {r['server_rss_growth_mb']:.0f} MB"
        )
        verdict.check(
            "stalled viewer: the normal viewer gets every line", str(r["normal_got_all"]), r["normal_got_all"]
        )
        verdict.check(
            "stalled viewer: told log.behind", str(r["stalled_behind_at"]), r["stalled_behind_at"] is not None
        )
        growth_limit = r["flood_mb"] / 2
        verdict.check(
            f"stalled viewer: server RSS grows < {growth_limit:g} MB (half the flood)",
            f"{r['server_rss_growth_mb']:.0f} MB",
            r["server_rss_growth_mb"] < growth_limit,
        )
    print(f"\nhost afterwards: {host_figures()}; handshakes retried: {servers.reconnects}")
    return verdict.print()


def _client_count(clients: int, viewers: int) -> int:
    """``--clients``, or (0) one client process per 250 viewers, at most 4."""
    return clients if clients > 0 else min(4, max(1, -(-viewers // 250)))


def _costs_row(r: dict[str, Any]) -> str:
    return (
        f" {r['server_cpu'] * 100:>7.0f}% {r['client_cpu'] * 100:>7.0f}% {r['server_us_per_message']:>10.1f}"
        f" {r['load']:>5.1f}"
    )


def _counts(r: dict[str, Any]) -> str:
    split = f", {r['split']} split" if "split" in r else ""
    return f"{r['lost']} lost, {r['duplicates']} twice{split}"


def _clean(r: dict[str, Any]) -> bool:
    return r["lost"] == 0 and r["duplicates"] == 0 and r.get("split", 0) == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--viewers", default="1,50,200")
    parser.add_argument("--processes", type=int, default=1, help="daphne processes; viewers are spread over them")
    parser.add_argument("--port", type=int, default=0, help="first server port (then +1, +2…); 0: free ports")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="lines per second")
    parser.add_argument("--flood-mb", type=int, default=40, help="0 to skip the stalled-viewer run")
    parser.add_argument(
        "--clients", type=int, default=0, help="processes the viewers run in; 0: one per 250 viewers, at most 4"
    )
    parser.add_argument("--send-events", help=argparse.SUPPRESS)  # the event sender's process
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)  # a process of viewers
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main())
        return 0
    if args.send_events:
        import django

        django.setup()
        print(json.dumps(send_events(json.loads(args.send_events))))
        return 0
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    # Stopped from outside (timeout, CI): unwind so the servers, database and files are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with production_servers(args.processes, args.port) as (servers, fixture):
        ok = asyncio.run(run_all(args, servers, fixture))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
