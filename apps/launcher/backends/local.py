"""The local backend: every rank of an attempt is a process group on this machine.

Design (see ``apps/launcher/rank_supervisor.py`` for the process side):

- **Detached supervisors.** ``start`` spawns one *rank supervisor* per rank (``python -m
  apps.launcher.rank_supervisor``) in a new session, stdin from /dev/null, output to a small log
  in the run directory, double-forked so it is not the portal's child. The supervisor starts the
  user's command in its own process group, pipes its output into the ``LogStore`` and records the
  outcome. The portal can restart or die: jobs keep running, and a new ``LocalBackend`` on the same
  ``run_root`` sees them again (adoption is just reading the files).
- **Run directory** ``{run_root}/{attempt_id}/``, mode 0700 as it holds the ranks' tokens:
  ``spec.json`` (the ``LaunchSpec`` plus where the log store lives, so a supervisor or a human
  can inspect it), per rank a ``rank-R.claim`` (the
  ``O_CREAT|O_EXCL`` claim that makes ``start`` start each rank exactly once even when two threads
  or two processes race), ``rank-R.json`` (the supervisor's state file, replaced atomically) and
  ``rank-R.supervisor.log``; and the ``suspend`` / ``stop`` markers.
- **Identity by pid + start time.** State files record pids together with the process start time
  (``/proc/<pid>/stat`` field 22) and the boot id. Before signalling, the backend checks that the
  recorded child is still that very process; a reused pid is never signalled, and a supervisor
  whose pid now belongs to someone else counts as gone.
- **Markers before signals.** ``signal_suspend`` writes ``suspend`` then SIGTERMs each running
  rank's process group (once per rank); ``stop`` writes ``stop`` then SIGKILLs them. The supervisor
  reads the markers to report KILLED rather than FAILED, and re-reads them right after it records a
  new child, so a rank that was starting while the marker was written is not missed.
- **Stops with a grace** (``stop_gracefully``, development containers): one step per call, never
  a wait. The first call writes ``suspend`` noted ``stop`` and SIGTERMs each rank's group; each
  supervisor then lets the rest of the group finish after its leader exits; a call once the grace
  has passed since the marker's time is ``stop``. The time is in the marker, so a restarted portal
  goes on counting from the same moment. ``restart_rank`` does the same for one rank (its
  ``rank-R.sigterm`` file's time starts its grace), then forgets it so ``start`` starts it again.
- **Observation** is derived from the state files plus liveness checks: a RUNNING state whose
  supervisor is gone is RUNNING if the child still lives (adopted: its output is no longer
  captured, see the limitation in ``rank_supervisor``), else FAILED "lost: supervisor and process
  gone" (KILLED if a stop/suspend was requested). A claim without a state file is PENDING for up to
  ``claim_timeout`` seconds, then FAILED "supervisor failed to start".

A suspend request is not a rank phase: a job that exits 0 after SIGTERM is SUCCEEDED (the truth),
and ``RankObservation`` has no field for "suspend requested". The observation's ``message`` says
so ("exited with code 0 after suspend request"), and ``suspend_requested(attempt_id)`` answers it.

The backend ignores ``uid``, ``image``, ``mounts``, ``capabilities`` and resource requests: ranks
run as the portal's user, on this machine's filesystem. The launcher sets ``CUDA_VISIBLE_DEVICES``
in each rank's env. If the portal runs under systemd, use ``KillMode=process`` so restarting the
unit does not kill the supervisors (which live in the unit's cgroup).

Plain Python (no Django): settings and the database are wired in by the launcher.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from apps.launcher.backends.base import Backend, LaunchSpec, RankObservation, RankPhase
from apps.launcher.rank_supervisor import (
    SPEC_FILE,
    STOP_MARKER,
    SUSPEND_MARKER,
    RankState,
    claim_file,
    kill_child_group,
    marker_exists,
    marker_time,
    platform_request,
    read_json,
    read_state,
    signal_child_group,
    sigterm_sent_file,
    state_file,
    supervisor_log_file,
    write_json_atomic,
    write_marker,
    write_state,
)
from apps.logs.store import LogStore

REPO_ROOT = Path(__file__).resolve().parents[3]
"""The directory holding ``apps/``: the supervisor's cwd and PYTHONPATH."""

SPAWN_WAIT_SECONDS = 15.0
"""How long ``start`` waits for a supervisor's first process to daemonize (normally ~50 ms)."""


class RankStillAliveError(RuntimeError):
    """``release`` was asked to forget an attempt that still has a live supervisor or process."""


class LocalBackend(Backend):
    """Ranks as detached process groups on this machine. See the module docstring."""

    name = "local"

    def __init__(
        self,
        run_root: Path,
        log_store: LogStore,
        *,
        python: str = sys.executable,
        claim_timeout: float = 30.0,
    ) -> None:
        self.run_root = Path(run_root)
        self.log_store = log_store
        self.python = python
        self.claim_timeout = claim_timeout

    # -- paths and files ---------------------------------------------------------------------

    def run_dir(self, attempt_id: int) -> Path:
        if isinstance(attempt_id, bool) or not isinstance(attempt_id, int) or attempt_id < 0:
            raise ValueError(f"invalid attempt id {attempt_id!r}")
        return self.run_root / str(attempt_id)

    def _meta(self, attempt_id: int) -> dict[str, Any] | None:
        return read_json(self.run_dir(attempt_id) / SPEC_FILE)

    def _ranks(self, run_dir: Path) -> list[int]:
        """Ranks that were claimed (or have a state file) in a run dir."""
        ranks: set[int] = set()
        try:
            names = os.listdir(run_dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        for name in names:
            stem, _, ext = name.partition(".")
            if ext in ("claim", "json") and stem.startswith("rank-") and stem[5:].isdigit():
                ranks.add(int(stem[5:]))
        return sorted(ranks)

    # -- Backend API -------------------------------------------------------------------------

    def start(self, spec: LaunchSpec) -> None:
        """Spawn a supervisor for every rank not claimed yet; never starts a rank twice."""
        run_dir = self.run_dir(spec.attempt_id)
        self.log_store.path(spec.chain_id, spec.attempt_id, 0)  # validates the chain id: fail here, not later
        self.run_root.mkdir(parents=True, exist_ok=True)
        # Private: spec.json holds every rank's env, including the attempt's API token.
        run_dir.mkdir(mode=0o700, exist_ok=True)
        if not (run_dir / SPEC_FILE).exists():
            write_json_atomic(
                run_dir / SPEC_FILE,
                {
                    "version": 1,
                    "spec": dataclasses.asdict(spec),
                    "log_root": str(self.log_store.root.resolve()),
                    "line_max_bytes": self.log_store.line_max_bytes,
                    "created_at": time.time(),
                },
            )
        spawned: list[tuple[int, subprocess.Popen[bytes]]] = []
        for rank_spec in spec.ranks:
            if not self._claim(run_dir, rank_spec.rank):
                continue
            try:
                spawned.append((rank_spec.rank, self._spawn(run_dir, rank_spec.rank)))
            except OSError as exc:
                self._record_spawn_failure(run_dir, rank_spec.rank, f"supervisor failed to start: {exc}")
        for rank, proc in spawned:
            try:
                code = proc.wait(timeout=SPAWN_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                continue  # the claim timeout in ``observe`` catches a supervisor that never reports
            if code != 0:
                log = supervisor_log_file(run_dir, rank)
                self._record_spawn_failure(run_dir, rank, f"supervisor failed to start (exit {code}); see {log}")

    def signal_suspend(self, attempt_id: int) -> None:
        """Write the ``suspend`` marker, then SIGTERM each live rank's process group (once per rank)."""
        run_dir = self.run_dir(attempt_id)
        if not run_dir.is_dir():
            return
        write_marker(run_dir, SUSPEND_MARKER)
        self._signal_all(run_dir, signal.SIGTERM)

    def stop(self, attempt_id: int, *, reason: str = "stop") -> None:
        """Write the ``stop`` marker (holding ``reason``), then SIGKILL each live rank's process group."""
        run_dir = self.run_dir(attempt_id)
        if not run_dir.is_dir():
            return
        write_marker(run_dir, STOP_MARKER, note="suspend" if reason == "suspend" else "stop")
        self._signal_all(run_dir, signal.SIGKILL)

    def stop_gracefully(self, attempt_id: int, *, grace_seconds: float) -> None:
        """Stop the attempt, letting its ranks save first; one step per call, it never waits.

        The first call writes the ``suspend`` marker noted ``stop`` and SIGTERMs each live rank's
        process group (once per rank); once ``grace_seconds`` have passed since the marker was
        written, a call is ``stop``: what is left is SIGKILLed. Call it again (each pass) until
        ``observe`` shows every rank final. Repeats are harmless."""
        run_dir = self.run_dir(attempt_id)
        if not run_dir.is_dir():
            return
        if grace_seconds <= 0 or marker_exists(run_dir, STOP_MARKER):
            self.stop(attempt_id)
            return
        write_marker(run_dir, SUSPEND_MARKER, note="stop")
        since = marker_time(run_dir, SUSPEND_MARKER)
        if since is not None and time.time() - since >= grace_seconds:
            self.stop(attempt_id)
            return
        self._signal_all(run_dir, signal.SIGTERM)

    def restart_rank(self, attempt_id: int, rank: int, *, grace_seconds: float) -> bool:
        """Make one rank ready to be started again, the rest of the attempt running on; one step
        per call, it never waits. Returns True once the rank is forgotten (``start`` then starts
        it again), False while it is still ending: call again later.

        A live rank gets SIGTERM to its process group (once); ``grace_seconds`` after it (the time
        of its ``rank-R.sigterm`` file), what is left of the group is SIGKILLed. Once its
        supervisor has recorded the end and exited, the rank's files are removed (never its log)."""
        run_dir = self.run_dir(attempt_id)
        if not run_dir.is_dir():
            return True
        state = read_state(run_dir, rank)
        if state is None:
            age = self._claim_age(run_dir, rank)
            if age is not None and age <= self.claim_timeout:
                return False  # its supervisor is still starting
        else:
            supervisor, child = state.supervisor(), state.child()
            supervising = supervisor is not None and supervisor.is_alive()
            if not RankPhase(state.phase).is_final and (supervising or (child is not None and child.exists())):
                if signal_child_group(run_dir, state, signal.SIGTERM):
                    return False
                try:
                    since: float | None = sigterm_sent_file(run_dir, rank).stat().st_mtime
                except FileNotFoundError:
                    since = None  # its process is not started yet
                if since is not None and time.time() - since >= grace_seconds:
                    kill_child_group(state)
                return False
            if supervising:
                return False  # it has recorded the end and is about to exit
        for path in (state_file(run_dir, rank), claim_file(run_dir, rank), sigterm_sent_file(run_dir, rank)):
            path.unlink(missing_ok=True)
        return True

    def observe(self, attempt_id: int) -> dict[int, RankObservation]:
        run_dir = self.run_dir(attempt_id)
        meta = self._meta(attempt_id)
        nodes: dict[int, str] = {}
        if meta and isinstance(meta.get("spec"), dict):
            nodes = {int(r["rank"]): str(r.get("node", "")) for r in meta["spec"].get("ranks", ())}
        result: dict[int, RankObservation] = {}
        for rank in self._ranks(run_dir):
            obs = self._observe_rank(run_dir, rank, nodes.get(rank, ""))
            if obs is not None:
                result[rank] = obs
        return result

    def known_attempts(self) -> set[int]:
        try:
            names = os.listdir(self.run_root)
        except FileNotFoundError:
            return set()
        return {int(n) for n in names if n.isdigit() and (self.run_root / n).is_dir()}

    def release(self, attempt_id: int) -> None:
        """Remove the attempt's run directory (never its logs).

        Raises ``RankStillAliveError`` while any rank's supervisor or process is alive, or a rank
        is still being started; call ``stop`` first and retry once ``observe`` shows them final."""
        run_dir = self.run_dir(attempt_id)
        if not run_dir.is_dir():
            return
        alive = [rank for rank in self._ranks(run_dir) if self._rank_alive(run_dir, rank)]
        if alive:
            raise RankStillAliveError(f"attempt {attempt_id}: ranks {alive} still alive; stop them first")
        # Rename first so the attempt disappears atomically (two releases at once are harmless).
        trash = self.run_root / f".release-{attempt_id}-{os.getpid()}-{time.monotonic_ns()}"
        try:
            os.rename(run_dir, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def last_output_at(self, attempt_id: int) -> float | None:
        meta = self._meta(attempt_id)
        if not meta or not isinstance(meta.get("spec"), dict):
            return None
        return self.log_store.last_write_time(str(meta["spec"]["chain_id"]), attempt_id)

    # -- extras (not in the Backend interface) -----------------------------------------------

    def suspend_requested(self, attempt_id: int) -> bool:
        """Whether ``signal_suspend`` was called for the attempt (the phase does not say so)."""
        return marker_exists(self.run_dir(attempt_id), SUSPEND_MARKER)

    def stop_requested(self, attempt_id: int) -> bool:
        return marker_exists(self.run_dir(attempt_id), STOP_MARKER)

    def rank_state(self, attempt_id: int, rank: int) -> RankState | None:
        """The raw state file of one rank (pids, start times, command), for debugging pages."""
        return read_state(self.run_dir(attempt_id), rank)

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _claim(run_dir: Path, rank: int) -> bool:
        try:
            fd = os.open(claim_file(run_dir, rank), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, f"{os.getpid()} {time.time():.6f}\n".encode())
        finally:
            os.close(fd)
        return True

    def _spawn(self, run_dir: Path, rank: int) -> subprocess.Popen[bytes]:
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        with open(supervisor_log_file(run_dir, rank), "ab") as log:
            return subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "apps.launcher.rank_supervisor",
                    "--run-dir",
                    str(run_dir.resolve()),
                    "--rank",
                    str(rank),
                    "--daemonize",
                ],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )

    @staticmethod
    def _record_spawn_failure(run_dir: Path, rank: int, message: str) -> None:
        if state_file(run_dir, rank).exists():
            return  # the supervisor got far enough to report for itself
        write_state(
            run_dir, RankState(rank=rank, phase=RankPhase.FAILED.value, message=message, finished_at=time.time())
        )

    def _signal_all(self, run_dir: Path, sig: signal.Signals) -> None:
        for rank in self._ranks(run_dir):
            state = read_state(run_dir, rank)
            if state is None or RankPhase(state.phase).is_final:
                continue
            if sig == signal.SIGKILL:
                kill_child_group(state)  # also a group whose leader has exited after a SIGTERM
            else:
                signal_child_group(run_dir, state, sig)

    def _claim_age(self, run_dir: Path, rank: int) -> float | None:
        try:
            return time.time() - claim_file(run_dir, rank).stat().st_mtime
        except FileNotFoundError:
            return None

    def _rank_alive(self, run_dir: Path, rank: int) -> bool:
        state = read_state(run_dir, rank)
        if state is None:
            age = self._claim_age(run_dir, rank)
            return age is not None and age <= self.claim_timeout  # may still be starting
        supervisor, child = state.supervisor(), state.child()
        return bool((supervisor and supervisor.is_alive()) or (child and child.is_alive()))

    def _observe_rank(self, run_dir: Path, rank: int, node: str) -> RankObservation | None:
        state = read_state(run_dir, rank)
        if state is None:
            age = self._claim_age(run_dir, rank)
            if age is None:
                return None
            if age > self.claim_timeout:
                return RankObservation(
                    rank=rank,
                    phase=RankPhase.FAILED,
                    node=node,
                    message=f"supervisor failed to start (no report after {self.claim_timeout:.0f} s)",
                )
            return RankObservation(rank=rank, phase=RankPhase.PENDING, node=node)
        phase = RankPhase(state.phase)
        supervisor = state.supervisor()
        if phase.is_final or (supervisor is not None and supervisor.is_alive()):
            return self._from_state(state, phase, node)
        # The supervisor is gone. It may have written its final state just before exiting.
        latest = read_state(run_dir, rank)
        if latest is not None and RankPhase(latest.phase).is_final:
            return self._from_state(latest, RankPhase(latest.phase), node)
        child = state.child()
        if child is not None and child.is_alive():
            return dataclasses.replace(
                self._from_state(state, RankPhase.RUNNING, node),
                message="adopted: supervisor gone, output is no longer captured",
            )
        request = platform_request(run_dir)
        if request:
            return dataclasses.replace(
                self._from_state(state, RankPhase.KILLED, node),
                message=f"lost: supervisor gone, process ended after {request} request",
            )
        # Neither a final state nor a request: the supervisor crashed (OOM killer, kill -9) and took or
        # lost the job with it. Nothing says the job failed, so it is reported missing and the
        # launcher requeues the attempt, as for a lost node (a job's own failure is FAILED, written
        # by a living supervisor with the exit code).
        what = "supervisor and process gone" if child is not None else "supervisor gone before the process started"
        return dataclasses.replace(self._from_state(state, RankPhase.MISSING, node), message=f"lost: {what}")

    @staticmethod
    def _from_state(state: RankState, phase: RankPhase, node: str) -> RankObservation:
        return RankObservation(
            rank=state.rank,
            phase=phase,
            node=node,
            exit_code=state.exit_code,
            started_at=state.started_at,
            finished_at=state.finished_at,
            message=state.message,
        )


def isolates_owner(*, uid_mapped: bool) -> bool:
    """Whether a job of an owner with (or without) a POSIX account (``apps.accounts.posix``) runs
    isolated from other users' jobs: only when the server runs as root and can start it as that
    account (``rank_supervisor.run_as``). Otherwise every job runs as the server's own Unix user, and
    jobs can read each other's files, environment and tokens: the local backend is single-tenant."""
    return os.geteuid() == 0 and uid_mapped


def single_tenant_warning(*, refuse_unmapped: bool) -> str:
    """What the server logs at start-up about the local backend's isolation (docs/security.md);
    ``refuse_unmapped``: ``apps.accounts.posix.unmapped_owners_refused()`` (this module stays
    Django-free)."""
    if os.geteuid() == 0:
        unmapped = (
            "jobs of users without one are refused"
            if refuse_unmapped
            else "jobs of users without one run as root, unisolated (ROTA_LOCAL_UNMAPPED_OWNERS=run-as-server)"
        )
        return (
            "local backend: running as root, jobs of users with a POSIX account (a POSIX uid set by an"
            f" admin, or a Unix account of the same name on this machine) run as that account; {unmapped}"
        )
    return (
        f"local backend: SINGLE-TENANT. Every job runs as this server's Unix user (uid {os.geteuid()}), so"
        " jobs of different users can read each other's files, environment and job tokens. Use it for one"
        " team that trusts each other; run Rota as root with POSIX uids mapped, or use the Kubernetes backend"
    )


__all__ = ["REPO_ROOT", "LocalBackend", "RankStillAliveError", "isolates_owner", "single_tenant_warning"]
