"""The rank supervisor: a small detached process that runs one rank of a local attempt.

``python -m apps.launcher.rank_supervisor --run-dir D --rank R [--daemonize]``

The local backend (``apps/launcher/backends/local.py``) spawns one supervisor per rank in a new
session, stdin from /dev/null, output to ``rank-R.supervisor.log``; with ``--daemonize`` the
process forks once more and the parent exits at once, so the supervisor is re-parented away from
the portal: restarting or killing the portal neither stops the job nor leaves zombies behind.

What the supervisor does:

1. reads ``D/spec.json`` (the ``LaunchSpec`` plus where the log store lives) and writes its state
   file ``D/rank-R.json`` (phase ``pending``, its own pid and process start time);
2. unless a ``stop`` or ``suspend`` marker already exists, starts the user's command as a child in
   its **own process group**, cwd = workspace, env = a minimal base (PATH, HOME, LANG,
   PYTHONUNBUFFERED=1) plus the rank's env from the spec; a command that cannot start (missing
   workspace or entrypoint, not executable) ends the rank FAILED with the reason in the rank's log;
3. pumps the child's merged stdout+stderr from a pipe (``os.read``, no buffering beyond the line)
   into the log store's ``LogWriter`` and waits for the child's exit via a pidfd (no polling);
4. when the child (the group leader) exits, SIGKILLs whatever is left of its group (as a container
   runtime would), drains the pipe for a moment, and records the outcome atomically. After a
   SIGTERM to the group (a suspend) it first lets the rest of the group finish (the Python under
   ``bash job.sh`` saving its checkpoint), until the platform's kill (the ``stop`` marker, or a SIGKILL
   of the group by the backend) or ``GROUP_AFTER_TERM_SECONDS``.

The state file (JSON, replaced atomically with ``os.replace``) holds the supervisor's and the
child's **identity**: pid, plus the process start time from ``/proc/<pid>/stat`` (field 22, clock
ticks since boot), plus the kernel boot id. A pid alone can be reused by an unrelated process after
a crash or a reboot; pid + start time + boot id cannot, so the backend never signals a stranger.

Markers are plain files the backend writes *before* it signals: ``suspend`` (SIGTERM to the group)
and ``stop`` (SIGKILL). A ``suspend`` marker noted ``stop`` is a stop with a grace (a development
container's: SIGTERM first, SIGKILL at the end of the grace, counted from the marker's time), reported
as a stop. They let the supervisor tell a platform kill (KILLED) from a crash (FAILED),
and they close the race with a rank that is just starting: the backend writes the marker, then
reads the state; the supervisor writes the state with the child's pid, then re-reads the markers.
One of the two always sees the other. SIGTERM is delivered at most once per rank
(``rank-R.sigterm`` is created with ``O_EXCL`` by whoever sends it), so a reconcile loop that repeats
``signal_suspend`` every pass does not hammer a job that is saving its checkpoint.

Outcome: exit 0 → SUCCEEDED (even after a suspend request: that is the truth; the message says a
suspend was requested); death by SIGTERM/SIGKILL (or exit 128+that signal) after a marker, or after
the supervisor itself was told to terminate → KILLED; any other non-zero exit or signal → FAILED
(``killed by SIGSEGV``). For signal deaths ``exit_code`` is ``128 + signal`` as shells and
Kubernetes report it.

SIGTERM/SIGINT/SIGHUP sent to the supervisor itself are forwarded to the child's group as SIGTERM.

Limitation: if the supervisor dies (SIGKILL, OOM killer), the pipe's read end goes with it; the
job keeps running (the backend reports it adopted) but its next write to stdout/stderr fails with
EPIPE/SIGPIPE, which usually ends it, and that output is lost.

This module imports only the standard library, ``logstore`` and ``backends.base`` (no Django).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from apps.launcher.backends.base import EntrypointKind, RankPhase
from apps.logs.store import LogStore, LogWriter

SPEC_FILE = "spec.json"
SUSPEND_MARKER = "suspend"
STOP_MARKER = "stop"
DRAIN_SECONDS = 2.0
"""After the child exits, how long to keep reading output still in (or still written to) the pipe."""

GROUP_POLL_SECONDS = 0.1
"""While waiting for the rest of a group after a SIGTERM, how often to look whether it is gone."""

GROUP_AFTER_TERM_SECONDS = 900.0
"""After a SIGTERM went to the group (a suspend, or the supervisor told to terminate) and the leader
exited, how long the rest of the group may run on before it is killed. Under ``bash job.sh`` the
shell dies of the SIGTERM at once while its Python is still saving a checkpoint; killing the group
then would cut the checkpoint off. The platform's own kill at the end of the grace period
(``stop``) ends it sooner; this bound only keeps a supervisor from waiting forever."""

_BASE_ENV_KEYS = ("PATH", "HOME", "LANG")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_LOG_PREFIX = "[rota] "


def claim_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"rank-{rank}.claim"


def state_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"rank-{rank}.json"


def supervisor_log_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"rank-{rank}.supervisor.log"


def sigterm_sent_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"rank-{rank}.sigterm"


# --------------------------------------------------------------------------------------------
# Process identity (pid + start time + boot id)

_BOOT_ID: str | None = None


def boot_id() -> str:
    """The kernel's boot id ('' where unavailable): process start times only compare within one boot."""
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            _BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            _BOOT_ID = ""
    return _BOOT_ID


def proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, start_ticks)`` from ``/proc/<pid>/stat``, or ``None`` if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # ``comm`` (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(b")") + 2 :].split()
    try:
        return rest[0].decode(), int(rest[19])  # field 3 = state, field 22 = starttime
    except (IndexError, ValueError):
        return None


def group_has_live_members(pgid: int, leader: int) -> bool:
    """Whether a process other than ``leader`` (a zombie until reaped) is alive in group ``pgid``.

    Read from ``/proc``: ``killpg(pgid, 0)`` cannot say it, since the unreaped leader keeps the
    group in existence."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == leader:
            continue
        try:
            raw = (entry / "stat").read_bytes()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2 :].split()
        try:
            if int(rest[2]) == pgid and rest[0] not in (b"Z", b"X"):  # field 5 = pgrp, field 3 = state
                return True
        except (IndexError, ValueError):
            continue
    return False


def proc_start_ticks(pid: int) -> int | None:
    stat = proc_stat(pid)
    return stat[1] if stat else None


@dataclass(frozen=True)
class ProcessIdentity:
    """A process named so that a reused pid does not match: pid, start ticks, boot id."""

    pid: int
    start_ticks: int | None
    boot: str

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        return cls(pid=pid, start_ticks=proc_start_ticks(pid), boot=boot_id())

    def exists(self) -> bool:
        """Still the same process, running or an unreaped zombie (whose pid, and so the process group
        it leads, cannot have been reused). Linux only (``/proc``)."""
        if self.pid <= 0 or (self.boot and boot_id() and self.boot != boot_id()):
            return False
        stat = proc_stat(self.pid)
        if stat is None or self.start_ticks is None:
            return False
        return stat[0] not in ("X", "x") and stat[1] == self.start_ticks

    def is_alive(self) -> bool:
        """Running (not a zombie) and still the same process."""
        if self.pid <= 0 or (self.boot and boot_id() and self.boot != boot_id()):
            return False
        stat = proc_stat(self.pid)
        if stat is None:
            if Path("/proc/self/stat").exists():
                return False
            # No procfs (not Linux): fall back to "a process with this pid exists".
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        state, ticks = stat
        return state not in ("Z", "X", "x") and self.start_ticks is not None and ticks == self.start_ticks


# --------------------------------------------------------------------------------------------
# State file


@dataclass
class RankState:
    """What ``rank-R.json`` holds. ``phase`` is a ``RankPhase`` value; times are epoch seconds."""

    rank: int
    phase: str = RankPhase.PENDING.value
    boot_id: str = ""
    supervisor_pid: int | None = None
    supervisor_start_ticks: int | None = None
    supervisor_started_at: float | None = None
    child_pid: int | None = None
    child_pgid: int | None = None
    child_start_ticks: int | None = None
    command: list[str] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    signal: str | None = None  # e.g. "SIGKILL" when the child died of a signal
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def supervisor(self) -> ProcessIdentity | None:
        if self.supervisor_pid is None:
            return None
        return ProcessIdentity(self.supervisor_pid, self.supervisor_start_ticks, self.boot_id)

    def child(self) -> ProcessIdentity | None:
        if self.child_pid is None:
            return None
        return ProcessIdentity(self.child_pid, self.child_start_ticks, self.boot_id)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a unique temporary file, fsync, then ``os.replace`` it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_state(run_dir: Path, rank: int) -> RankState | None:
    data = read_json(state_file(run_dir, rank))
    if data is None:
        return None
    try:
        return RankState.from_dict(data)
    except TypeError:
        return None


def write_state(run_dir: Path, state: RankState) -> None:
    write_json_atomic(state_file(run_dir, state.rank), state.to_dict())


def marker_exists(run_dir: Path, name: str) -> bool:
    return (run_dir / name).exists()


def marker_note(run_dir: Path, name: str) -> str:
    """The note a marker was written with ("" if none, or if it is gone)."""
    try:
        lines = (run_dir / name).read_text().splitlines()
    except OSError:
        return ""
    return lines[1].strip() if len(lines) > 1 else ""


def marker_time(run_dir: Path, name: str) -> float | None:
    """When a marker was written (its first line), or None if it is gone or unreadable."""
    try:
        first = (run_dir / name).read_text().partition("\n")[0]
        return float(first)
    except (OSError, ValueError):
        return None


def platform_request(run_dir: Path) -> str:
    """What the platform asked of the run: "stop", "suspend" or "" (nothing). A kill that ends a
    suspend (the job was ready, or its grace ran out) says "suspend"; a stop with a grace (the
    ``suspend`` marker noted ``stop``) says "stop"."""
    if marker_exists(run_dir, STOP_MARKER):
        return "suspend" if marker_note(run_dir, STOP_MARKER) == "suspend" else "stop"
    if marker_exists(run_dir, SUSPEND_MARKER):
        return "stop" if marker_note(run_dir, SUSPEND_MARKER) == "stop" else "suspend"
    return ""


def write_marker(run_dir: Path, name: str, *, note: str = "") -> None:
    """Create a marker: its time, and ``note`` on a second line (the first writer's are kept)."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(run_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, f"{time.time():.6f}\n{note}\n".encode())
        finally:
            os.close(fd)


def signal_child_group(run_dir: Path, state: RankState, sig: signal.Signals) -> bool:
    """Signal the rank's child process group if the recorded child is still the same process.

    SIGTERM goes at most once per rank (an ``O_EXCL`` file records that it was sent). Returns
    whether a signal was sent."""
    child = state.child()
    if child is None or state.child_pgid is None or not child.is_alive():
        return False
    if sig == signal.SIGTERM:
        try:
            fd = os.open(sigterm_sent_file(run_dir, state.rank), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        os.close(fd)
    try:
        os.killpg(state.child_pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_child_group(state: RankState) -> bool:
    """SIGKILL the rank's child process group, also once its leader has exited but is not reaped
    yet: after a SIGTERM the supervisor waits for the rest of the group before it reaps the leader,
    and the zombie keeps the group id from being reused. Returns whether the signal was sent."""
    child = state.child()
    if child is None or state.child_pgid is None or not child.exists():
        return False
    try:
        os.killpg(state.child_pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# --------------------------------------------------------------------------------------------
# Building the command


class CommandError(Exception):
    """The rank's command cannot be started; the message goes into the rank's log."""


def child_environment(rank_env: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    """Minimal base (PATH, HOME, LANG, PYTHONUNBUFFERED=1) overlaid with the rank's env."""
    source = os.environ if base is None else base
    env = {k: source[k] for k in _BASE_ENV_KEYS if k in source}
    env.setdefault("PATH", _DEFAULT_PATH)
    env["PYTHONUNBUFFERED"] = "1"  # live logs from Python started by bash wrappers too
    env.update({str(k): str(v) for k, v in rank_env.items()})
    return env


def run_as(spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """``Popen`` arguments that start the job as its owner's POSIX account, when that is possible.

    Only a supervisor running as root can switch users, and only an owner with a POSIX account
    (``uid_mapped``: mapped by an admin, or this host's account of the same name) has one: then the
    job runs as ``uid``/``gid`` with no supplementary groups, and ``HOME``, ``USER`` and ``LOGNAME``
    from the account (as Slurm does). Its log and state files stay the supervisor's (root's), so the
    job cannot rewrite them, and other users' jobs cannot read its environment
    (``/proc/<pid>/environ``: its token). As root with no account, the job is refused
    (``refuse_unmapped``, raises ``CommandError``) or runs as root, unisolated. Not as root, every job
    runs as the server's own user: the local backend is then single-tenant (docs/security.md)."""
    if os.geteuid() != 0:
        return {}
    if not spec.get("uid_mapped"):
        if spec.get("refuse_unmapped"):
            raise CommandError(
                f"refused: user {spec.get('user') or '?'} has no POSIX account on this cluster, and jobs"
                " never run as root here. Ask an admin to set your POSIX uid (or to create a Unix"
                " account with your user name), then resubmit."
            )
        return {}
    uid = int(spec["uid"])
    gid = int(spec["gid"]) if spec.get("gid") is not None else uid
    try:
        import pwd

        account = pwd.getpwuid(uid)
    except KeyError:
        account = None
    if account is not None:
        env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
    else:
        env["HOME"] = str(spec["workspace"])
        env["USER"] = env["LOGNAME"] = str(spec.get("user") or uid)
    return {"user": uid, "group": gid, "extra_groups": []}


def build_command(spec: dict[str, Any], env: dict[str, str]) -> list[str]:
    """argv for the rank: PYTHON → interpreter -u file, BASH → bash file, EXECUTABLE → file.

    Relative entrypoints resolve against the workspace; a bare EXECUTABLE name not found there is
    looked up on the job's PATH. Raises ``CommandError`` with a message for the user."""
    workspace = Path(spec["workspace"])
    if not workspace.is_dir():
        raise CommandError(f"workspace not found: {workspace}")
    entry = str(spec.get("entrypoint") or "")
    if not entry:
        raise CommandError("no entrypoint given")
    try:
        kind = EntrypointKind(spec["kind"])
    except ValueError:
        raise CommandError(f"unknown entrypoint kind {spec['kind']!r}") from None
    params = [str(p) for p in spec.get("parameters") or ()]
    path = Path(entry) if os.path.isabs(entry) else workspace / entry
    if kind is EntrypointKind.PYTHON:
        if not path.is_file():
            raise CommandError(f"entrypoint not found: {path}")
        interpreter = str(spec.get("interpreter") or "python3")
        return [interpreter, "-u", str(path), *params]
    if kind is EntrypointKind.BASH:
        if not path.is_file():
            raise CommandError(f"entrypoint not found: {path}")
        return ["bash", str(path), *params]
    if path.is_file():
        if not os.access(path, os.X_OK):
            raise CommandError(f"entrypoint is not executable: {path}")
        return [str(path), *params]
    if "/" not in entry and (found := shutil.which(entry, path=env.get("PATH"))):
        return [found, *params]
    raise CommandError(f"entrypoint not found: {entry} (looked in {workspace} and on PATH)")


# --------------------------------------------------------------------------------------------
# The supervisor


class Supervisor:
    """Runs one rank: spawn, pump output to the log store, record the outcome."""

    def __init__(self, run_dir: Path, rank: int) -> None:
        self.run_dir = run_dir
        self.rank = rank
        self.state = RankState(
            rank=rank,
            boot_id=boot_id(),
            supervisor_pid=os.getpid(),
            supervisor_start_ticks=proc_start_ticks(os.getpid()),
            supervisor_started_at=time.time(),
        )
        self._child_pgid: int | None = None  # set while the child is unreaped (safe to signal)
        self._terminated_by: int | None = None  # a signal the supervisor itself received
        self._writer: LogWriter | None = None
        self._write_errors = 0

    # -- entry point -------------------------------------------------------------------------

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        meta = read_json(self.run_dir / SPEC_FILE)
        spec = meta.get("spec") if meta else None
        rank_spec = None
        if isinstance(spec, dict):
            rank_spec = next((r for r in spec.get("ranks", ()) if r.get("rank") == self.rank), None)
        if meta is None or spec is None or rank_spec is None:
            return self._finish(RankPhase.FAILED, f"supervisor: no spec for rank {self.rank} in {self.run_dir}")
        write_state(self.run_dir, self.state)
        self._log(f"supervisor {os.getpid()} for attempt {spec.get('attempt_id')} rank {self.rank}")
        store = LogStore(Path(meta["log_root"]), int(meta.get("line_max_bytes", 4096)))
        try:
            self._writer = store.writer(str(spec["chain_id"]), int(spec["attempt_id"]), self.rank)
        except (OSError, ValueError) as exc:
            return self._finish(RankPhase.FAILED, f"cannot open the log: {exc}")
        try:
            return self._run(spec, rank_spec)
        finally:
            self._writer.close()

    def _run(self, spec: dict[str, Any], rank_spec: dict[str, Any]) -> int:
        before = self._platform_request() or ("supervisor termination" if self._terminated_by is not None else "")
        if before:
            return self._finish(RankPhase.KILLED, f"{before} requested before the job started", to_log=True)
        env = child_environment(rank_spec.get("env") or {})
        try:
            identity = run_as(spec, env)
            argv = build_command(spec, env)
        except CommandError as exc:
            return self._finish(RankPhase.FAILED, str(exc), to_log=True)
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=spec["workspace"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
                close_fds=True,
                restore_signals=True,
                **identity,
            )
        except OSError as exc:
            os.close(read_fd)
            return self._finish(RankPhase.FAILED, f"could not start {argv[0]}: {exc.strerror or exc}", to_log=True)
        finally:
            os.close(write_fd)
        self._child_pgid = proc.pid  # start_new_session: the child leads its own group
        self.state.child_pid = proc.pid
        self.state.child_pgid = proc.pid
        self.state.child_start_ticks = proc_start_ticks(proc.pid)
        self.state.command = argv
        self.state.started_at = time.time()
        self.state.phase = RankPhase.RUNNING.value
        write_state(self.run_dir, self.state)
        self._log(f"started pid {proc.pid}: {' '.join(argv)}")
        if self._terminated_by is not None:  # told to terminate while spawning
            self._forward(signal.SIGTERM)
        # The backend writes a marker and then reads the state; it may have read it before the
        # child existed. Re-check the markers now that the child's pid is recorded.
        if marker_exists(self.run_dir, STOP_MARKER):
            signal_child_group(self.run_dir, self.state, signal.SIGKILL)
        elif marker_exists(self.run_dir, SUSPEND_MARKER):
            signal_child_group(self.run_dir, self.state, signal.SIGTERM)
        self._pump(proc, read_fd)
        self._child_pgid = None
        returncode = proc.wait()
        return self._record_exit(returncode)

    # -- output and exit ---------------------------------------------------------------------

    def _pump(self, proc: subprocess.Popen[bytes], read_fd: int) -> None:
        """Copy output to the log until the child exits and the pipe is drained (or times out)."""
        try:
            pidfd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            pidfd = None  # old kernel: poll the child's status instead
        pipe_open = True
        exited = False
        drain_deadline = 0.0
        group_deadline: float | None = None  # waiting for the group after a SIGTERM (see below)
        try:
            while True:
                if group_deadline is not None:
                    # The platform's kill (the ``stop`` marker) cannot reach the group through
                    # ``signal_child_group`` any more (the leader it checks is a zombie): see it here.
                    if (
                        time.monotonic() < group_deadline
                        and not marker_exists(self.run_dir, STOP_MARKER)
                        and group_has_live_members(proc.pid, proc.pid)
                    ):
                        pipe_open = self._copy_output_for(read_fd, pipe_open, GROUP_POLL_SECONDS)
                        continue
                    group_deadline = None
                    self._kill_rest_of_group(proc.pid)
                    drain_deadline = time.monotonic() + DRAIN_SECONDS
                if exited:
                    remaining = drain_deadline - time.monotonic()
                    if not pipe_open or remaining <= 0:
                        break
                    timeout: float | None = remaining
                else:
                    timeout = None if pidfd is not None else 0.05
                watch = ([read_fd] if pipe_open else []) + ([pidfd] if pidfd is not None and not exited else [])
                ready = select.select(watch, [], [], timeout)[0] if watch else []
                if not watch and timeout:
                    time.sleep(timeout)
                if read_fd in ready:
                    data = os.read(read_fd, 65536)
                    if data:
                        self._write_output(data)
                    else:
                        pipe_open = False
                if not exited and os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    exited = True
                    if self._term_sent():
                        # The group was told to terminate: its other processes (the Python under
                        # ``bash job.sh``) may still be saving a checkpoint. Let them finish.
                        group_deadline = time.monotonic() + GROUP_AFTER_TERM_SECONDS
                        continue
                    self._kill_rest_of_group(proc.pid)
                    drain_deadline = time.monotonic() + DRAIN_SECONDS
        finally:
            os.close(read_fd)
            if pidfd is not None:
                os.close(pidfd)

    def _copy_output_for(self, read_fd: int, pipe_open: bool, seconds: float) -> bool:
        """Wait up to ``seconds`` for output and copy it to the log; returns whether the pipe is open."""
        if not pipe_open:
            time.sleep(seconds)
            return False
        if select.select([read_fd], [], [], seconds)[0]:
            data = os.read(read_fd, 65536)
            if not data:
                return False
            self._write_output(data)
        return True

    def _term_sent(self) -> bool:
        """Whether a SIGTERM went to the child's group (a suspend, or this supervisor terminated)."""
        return self._terminated_by is not None or sigterm_sent_file(self.run_dir, self.rank).exists()

    @staticmethod
    def _kill_rest_of_group(pgid: int) -> None:
        """SIGKILL what is left of the group (background processes), as a container runtime would.
        The leader is a zombie until reaped, so its group id cannot have been reused."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    def _write_output(self, data: bytes) -> None:
        assert self._writer is not None
        try:
            self._writer.write_bytes(data)
        except OSError as exc:  # disk full: keep draining so the job never blocks on the pipe
            self._write_errors += 1
            if self._write_errors == 1:
                self._log(f"cannot write the log, output dropped: {exc}")

    def _record_exit(self, returncode: int) -> int:
        request = self._platform_request()
        after = f" after {request} request" if request else ""
        if returncode == 0:
            self.state.exit_code = 0
            return self._finish(RankPhase.SUCCEEDED, f"exited with code 0{after}" if request else "", to_log=True)
        signum = -returncode if returncode < 0 else returncode - 128
        requested = bool(request) or self._terminated_by is not None
        platform_signal = requested and signum in (signal.SIGTERM, signal.SIGKILL)
        if returncode < 0 or (returncode > 128 and platform_signal):
            self.state.exit_code = 128 + signum
            self.state.signal = signal_name(signum)
            if platform_signal:
                reason = request or "supervisor termination"
                how = "killed by" if returncode < 0 else f"exited with code {returncode} after"
                return self._finish(RankPhase.KILLED, f"{how} {signal_name(signum)} ({reason})", to_log=True)
            return self._finish(RankPhase.FAILED, f"killed by {signal_name(signum)}{after}", to_log=True)
        self.state.exit_code = returncode
        return self._finish(RankPhase.FAILED, f"exited with code {returncode}{after}", to_log=True)

    def _finish(self, phase: RankPhase, message: str, *, to_log: bool = False) -> int:
        if self._writer is not None:
            # The log is complete (pending partial line included) before the state says final.
            with contextlib.suppress(OSError, ValueError):
                if to_log and message:
                    self._writer.write_line(_LOG_PREFIX + message)
            with contextlib.suppress(OSError):
                self._writer.close()
        self.state.phase = phase.value
        self.state.message = message
        self.state.finished_at = time.time()
        try:
            write_state(self.run_dir, self.state)
        except OSError as exc:  # run dir removed under us: nothing left to report to
            self._log(f"cannot write state: {exc}")
        self._log(f"rank {self.rank} {phase.value}: {message}")
        return 0

    # -- signals -----------------------------------------------------------------------------

    def _platform_request(self) -> str:
        return platform_request(self.run_dir)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._terminated_by = signum
        self._forward(signal.SIGTERM)

    def _forward(self, sig: signal.Signals) -> None:
        if self._child_pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._child_pgid, sig)

    def _log(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError, ValueError):
            print(f"{stamp} {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.launcher.rank_supervisor", description=__doc__)
    parser.add_argument("--run-dir", required=True, type=Path, help="the attempt's run directory")
    parser.add_argument("--rank", required=True, type=int)
    parser.add_argument("--daemonize", action="store_true", help="fork; the parent exits at once")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    if args.daemonize and os.fork() > 0:
        os._exit(0)  # the caller waits for this exit; the supervisor lives on, re-parented
    return Supervisor(run_dir, args.rank).run()


if __name__ == "__main__":
    sys.exit(main())
