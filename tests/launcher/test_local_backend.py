"""The local backend with real processes: detached supervisors, state files, markers, adoption.

Every wait is on a condition with a timeout (``wait_until``); the ``harness`` fixture kills whatever
a test leaves running (supervisors and process groups) before its temporary directories go away.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from apps.launcher import rank_supervisor
from apps.launcher.backends.base import EntrypointKind, LaunchSpec, RankObservation, RankPhase, RankSpec
from apps.launcher.backends.local import REPO_ROOT, LocalBackend, RankStillAliveError
from apps.launcher.rank_supervisor import (
    SUSPEND_MARKER,
    ProcessIdentity,
    RankState,
    boot_id,
    proc_start_ticks,
    read_state,
    write_marker,
    write_state,
)
from apps.logs.store import LogStore, split_timestamp

CHAIN = "c0ffee00-1234"
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``predicate`` every 20 ms until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Harness:
    root: Path
    workspace: Path
    store: LogStore
    backend: LocalBackend
    extra_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def script(self, name: str, body: str, *, executable: bool = False) -> str:
        path = self.workspace / name
        path.write_text(textwrap.dedent(body).lstrip())
        if executable:
            path.chmod(0o755)
        return name

    def spec(
        self,
        attempt_id: int,
        entrypoint: str,
        *,
        kind: EntrypointKind = EntrypointKind.BASH,
        ranks: int = 1,
        parameters: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> LaunchSpec:
        return LaunchSpec(
            attempt_id=attempt_id,
            chain_id=CHAIN,
            user="alice",
            uid=os.getuid(),
            workspace=str(self.workspace),
            kind=kind,
            entrypoint=entrypoint,
            parameters=parameters,
            interpreter=sys.executable,
            image="",
            ranks=tuple(
                RankSpec(
                    rank=r,
                    node=f"local-{r}",
                    env={"RANK": str(r), "WORLD_SIZE": str(ranks), "OUT": str(self.workspace), **(env or {})},
                )
                for r in range(ranks)
            ),
        )

    def log(self, attempt_id: int, rank: int = 0) -> list[str]:
        """Content of each stored line of a rank's log (timestamps checked and stripped)."""
        text = self.store.read(CHAIN, attempt_id, rank, limit=1 << 20).data
        out = []
        for line in text.splitlines():
            stamp, content = split_timestamp(line)
            assert stamp is not None, line
            out.append(content)
        return out

    def wait_final(self, attempt_id: int, ranks: int = 1) -> dict[int, RankObservation]:
        def done() -> dict[int, RankObservation] | None:
            obs = self.backend.observe(attempt_id)
            ok = len(obs) == ranks and all(o.phase.is_final for o in obs.values())
            return obs if ok else None

        return wait_until(done, what=f"attempt {attempt_id} to finish")

    def wait_log(self, attempt_id: int, text: str, rank: int = 0) -> None:
        wait_until(lambda: text in self.log(attempt_id, rank), what=f"{text!r} in the log of rank {rank}")

    def state(self, attempt_id: int, rank: int = 0) -> RankState:
        state = read_state(self.backend.run_dir(attempt_id), rank)
        assert state is not None
        return state


def _kill_leftovers(run_root: Path) -> list[ProcessIdentity]:
    alive: list[ProcessIdentity] = []
    if not run_root.is_dir():
        return alive
    for run_dir in run_root.iterdir():
        for path in run_dir.glob("rank-*.json"):
            state = read_state(run_dir, int(path.stem.split("-")[1]))
            if state is None:
                continue
            for ident, group in ((state.child(), state.child_pgid), (state.supervisor(), None)):
                if ident is not None and ident.is_alive():
                    alive.append(ident)
                    try:
                        if group is not None:
                            os.killpg(group, signal.SIGKILL)
                        else:
                            os.kill(ident.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
    return alive


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    store = LogStore(tmp_path / "logs")
    h = Harness(tmp_path, workspace, store, LocalBackend(tmp_path / "run", store))
    try:
        yield h
    finally:
        for proc in h.extra_procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for attempt in h.backend.known_attempts():
            h.backend.stop(attempt)
        survivors = _kill_leftovers(tmp_path / "run")
        wait_until(lambda: not any(p.is_alive() for p in survivors), what="left-over processes to die")
        # Supervisors write their final state a moment after their child dies: let them finish.
        wait_until(
            lambda: (
                not any(
                    h.backend._rank_alive(d, r) for d in (tmp_path / "run").glob("[0-9]*") for r in h.backend._ranks(d)
                )
            ),
            what="supervisors to exit",
        )


# --------------------------------------------------------------------------------------------
# Running and outcomes


def test_two_rank_bash_job_sees_its_rank_env_and_logs_per_rank(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTA_TEST_PORTAL_SECRET", "must-not-leak")
    entry = harness.script(
        "job.sh",
        """
        echo "rank=$RANK world=$WORLD_SIZE args=$*"
        echo "cwd=$(pwd)"
        echo "secret=${ROTA_TEST_PORTAL_SECRET:-unset}"
        echo "on stderr" >&2
        """,
    )
    harness.backend.start(harness.spec(1, entry, ranks=2, parameters=("a b", "c")))
    obs = harness.wait_final(1, ranks=2)
    assert {r: (o.phase, o.exit_code, o.node) for r, o in obs.items()} == {
        0: (RankPhase.SUCCEEDED, 0, "local-0"),
        1: (RankPhase.SUCCEEDED, 0, "local-1"),
    }
    for rank in (0, 1):
        assert harness.log(1, rank) == [
            f"rank={rank} world=2 args=a b c",
            f"cwd={harness.workspace}",
            "secret=unset",
            "on stderr",
        ]
        o = obs[rank]
        assert o.started_at is not None
        assert o.finished_at is not None
        assert o.started_at <= o.finished_at
        assert o.message == ""


def test_two_rank_python_job_runs_unbuffered_with_parameters(harness: Harness) -> None:
    entry = harness.script(
        "train.py",
        """
        import os, sys
        print("py rank", os.environ["RANK"], sys.argv[1:])
        print("to stderr", file=sys.stderr)
        """,
    )
    harness.backend.start(harness.spec(2, entry, kind=EntrypointKind.PYTHON, ranks=2, parameters=("--lr", "0.1")))
    obs = harness.wait_final(2, ranks=2)
    assert [o.phase for o in obs.values()] == [RankPhase.SUCCEEDED, RankPhase.SUCCEEDED]
    assert harness.log(2, 0) == ["py rank 0 ['--lr', '0.1']", "to stderr"]
    assert harness.log(2, 1) == ["py rank 1 ['--lr', '0.1']", "to stderr"]
    assert harness.state(2, 0).command == [sys.executable, "-u", str(harness.workspace / entry), "--lr", "0.1"]


def test_executable_entrypoint_runs_directly(harness: Harness) -> None:
    entry = harness.script("run", "#!/bin/sh\necho exec $1\n", executable=True)
    harness.backend.start(harness.spec(3, entry, kind=EntrypointKind.EXECUTABLE, parameters=("ok",)))
    assert harness.wait_final(3)[0].phase == RankPhase.SUCCEEDED
    assert harness.log(3) == ["exec ok"]


def test_a_last_line_without_newline_is_in_the_log_once_the_rank_is_final(harness: Harness) -> None:
    entry = harness.script("partial.sh", "echo done\nprintf 'no newline at the end'\n")
    harness.backend.start(harness.spec(16, entry))
    assert harness.wait_final(16)[0].phase == RankPhase.SUCCEEDED
    assert harness.log(16) == ["done", "no newline at the end"]


def test_non_zero_exit_fails_the_rank_with_its_exit_code(harness: Harness) -> None:
    entry = harness.script("fail.sh", "echo about to fail\nexit 3\n")
    harness.backend.start(harness.spec(4, entry))
    obs = harness.wait_final(4)[0]
    assert (obs.phase, obs.exit_code, obs.message) == (RankPhase.FAILED, 3, "exited with code 3")
    assert harness.log(4) == ["about to fail", "[rota] exited with code 3"]


@pytest.mark.parametrize("kind", [EntrypointKind.PYTHON, EntrypointKind.BASH, EntrypointKind.EXECUTABLE])
def test_missing_entrypoint_fails_with_the_reason_in_the_log(harness: Harness, kind: EntrypointKind) -> None:
    harness.backend.start(harness.spec(5, "nope/missing.py", kind=kind))
    obs = harness.wait_final(5)[0]
    assert obs.phase == RankPhase.FAILED
    assert obs.exit_code is None
    assert obs.message.startswith("entrypoint not found: ")
    assert "missing.py" in obs.message
    assert harness.log(5) == [f"[rota] {obs.message}"]


def test_non_executable_file_fails_with_a_clear_message(harness: Harness) -> None:
    entry = harness.script("plain", "echo hi\n")
    harness.backend.start(harness.spec(6, entry, kind=EntrypointKind.EXECUTABLE))
    obs = harness.wait_final(6)[0]
    assert obs.phase == RankPhase.FAILED
    assert obs.message == f"entrypoint is not executable: {harness.workspace / entry}"


def test_death_by_a_signal_the_platform_did_not_send_is_a_failure(harness: Harness) -> None:
    entry = harness.script(
        "crash.py",
        """
        import os, resource, signal
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.kill(os.getpid(), signal.SIGSEGV)
        """,
    )
    harness.backend.start(harness.spec(7, entry, kind=EntrypointKind.PYTHON))
    obs = harness.wait_final(7)[0]
    assert (obs.phase, obs.exit_code, obs.message) == (RankPhase.FAILED, 139, "killed by SIGSEGV")
    assert harness.state(7).signal == "SIGSEGV"


def test_background_processes_left_by_the_rank_are_killed_when_it_exits(harness: Harness) -> None:
    entry = harness.script("bg.sh", 'sleep 60 &\necho $! > "$OUT/bg.pid"\nexit 0\n')
    harness.backend.start(harness.spec(8, entry))
    assert harness.wait_final(8)[0].phase == RankPhase.SUCCEEDED
    bg = int((harness.workspace / "bg.pid").read_text())
    ident = ProcessIdentity(bg, proc_start_ticks(bg), boot_id())
    wait_until(lambda: not ident.is_alive(), what="the background sleep to be killed")


def test_output_is_captured_live_line_by_line(harness: Harness) -> None:
    entry = harness.script(
        "live.sh",
        """
        echo first
        while [ ! -e "$OUT/go" ]; do sleep 0.02; done
        echo second
        """,
    )
    harness.backend.start(harness.spec(9, entry))
    harness.wait_log(9, "first")  # visible while the job is still running
    assert harness.backend.observe(9)[0].phase == RankPhase.RUNNING
    last = harness.backend.last_output_at(9)
    assert last is not None
    assert abs(last - time.time()) < 60
    (harness.workspace / "go").touch()
    harness.wait_final(9)
    assert harness.log(9) == ["first", "second"]


# --------------------------------------------------------------------------------------------
# Exactly once


COUNTING_JOB = 'echo "$RANK $$" >> "$OUT/starts"\n'


def starts(harness: Harness) -> list[str]:
    path = harness.workspace / "starts"
    return sorted(line.split()[0] for line in path.read_text().splitlines()) if path.exists() else []


def test_start_twice_starts_each_rank_once(harness: Harness) -> None:
    entry = harness.script("count.sh", COUNTING_JOB)
    spec = harness.spec(10, entry, ranks=2)
    harness.backend.start(spec)
    harness.backend.start(spec)
    harness.wait_final(10, ranks=2)
    harness.backend.start(spec)  # also after the ranks finished
    assert starts(harness) == ["0", "1"]
    assert sorted(p.name for p in harness.backend.run_dir(10).glob("*.claim")) == ["rank-0.claim", "rank-1.claim"]


def test_concurrent_starts_from_threads_start_each_rank_once(harness: Harness) -> None:
    entry = harness.script("count.sh", COUNTING_JOB)
    spec = harness.spec(11, entry, ranks=3)
    backends = [LocalBackend(harness.backend.run_root, harness.store) for _ in range(4)]
    barrier = threading.Barrier(len(backends))
    errors: list[BaseException] = []

    def go(b: LocalBackend) -> None:
        try:
            barrier.wait()
            b.start(spec)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    harness.wait_final(11, ranks=3)
    assert starts(harness) == ["0", "1", "2"]


def portal_script(harness: Harness, attempt_id: int, entry: str, ranks: int, *, then: str = "") -> str:
    """Python source for a separate "portal" process that starts an attempt when told to on stdin."""
    return textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from apps.launcher.backends.base import EntrypointKind, LaunchSpec, RankSpec
        from apps.launcher.backends.local import LocalBackend
        from apps.logs.store import LogStore
        spec = LaunchSpec(
            attempt_id={attempt_id}, chain_id={CHAIN!r}, user="alice", uid=0, workspace={str(harness.workspace)!r},
            kind=EntrypointKind.BASH, entrypoint={entry!r}, parameters=(), interpreter=sys.executable, image="",
            ranks=tuple(RankSpec(rank=r, node="n", env={{"RANK": str(r), "OUT": {str(harness.workspace)!r}}})
                        for r in range({ranks})),
        )
        sys.stdin.readline()  # wait for the go signal
        LocalBackend(Path({str(harness.backend.run_root)!r}), LogStore(Path({str(harness.store.root)!r}))).start(spec)
        print("started", flush=True)
        {then}
        """
    )


def spawn_portal(harness: Harness, code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    harness.extra_procs.append(proc)
    return proc


def test_concurrent_starts_from_two_processes_start_each_rank_once(harness: Harness) -> None:
    entry = harness.script("count.sh", COUNTING_JOB)
    procs = [spawn_portal(harness, portal_script(harness, 12, entry, 2)) for _ in range(2)]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    assert [p.wait(timeout=30) for p in procs] == [0, 0]
    harness.wait_final(12, ranks=2)
    assert starts(harness) == ["0", "1"]


def test_jobs_keep_running_when_the_portal_process_group_is_killed(harness: Harness) -> None:
    entry = harness.script(
        "beat.sh",
        'echo ready\nwhile [ ! -e "$OUT/go" ]; do sleep 0.02; done\necho "still here"\n',
    )
    portal = spawn_portal(harness, portal_script(harness, 13, entry, 2, then="time.sleep(60)"))
    assert portal.stdin is not None
    assert portal.stdout is not None
    portal.stdin.write(b"go\n")
    portal.stdin.flush()
    assert portal.stdout.readline() == b"started\n"
    os.killpg(portal.pid, signal.SIGKILL)  # the portal and everything in its process group
    assert portal.wait(timeout=10) == -signal.SIGKILL
    for rank in (0, 1):
        harness.wait_log(13, "ready", rank)
    assert {o.phase for o in harness.backend.observe(13).values()} == {RankPhase.RUNNING}
    (harness.workspace / "go").touch()
    obs = harness.wait_final(13, ranks=2)
    assert {o.phase for o in obs.values()} == {RankPhase.SUCCEEDED}
    assert harness.log(13, 1) == ["ready", "still here"]


def test_the_run_directory_is_private_and_the_spec_inspectable(harness: Harness) -> None:
    entry = harness.script("ok.sh", "true\n")
    spec = harness.spec(14, entry, env={"ROTA_TASK_TOKEN": "secret-token"})
    harness.backend.start(spec)
    harness.wait_final(14)
    run_dir = harness.backend.run_dir(14)
    assert run_dir.stat().st_mode & 0o777 == 0o700
    assert (run_dir / "spec.json").stat().st_mode & 0o777 == 0o600
    saved = json.loads((run_dir / "spec.json").read_text())
    assert saved["spec"]["ranks"][0]["env"]["ROTA_TASK_TOKEN"] == "secret-token"
    assert saved["spec"]["kind"] == "bash"
    assert saved["log_root"] == str(harness.store.root.resolve())


def test_start_rejects_a_bad_chain_id_before_claiming_anything(harness: Harness) -> None:
    entry = harness.script("ok.sh", "true\n")
    spec = dataclasses.replace(harness.spec(15, entry), chain_id="../escape")
    with pytest.raises(ValueError, match="invalid chain id"):
        harness.backend.start(spec)
    assert harness.backend.known_attempts() == set()


# --------------------------------------------------------------------------------------------
# Suspend and stop


def test_suspend_sigterm_reaches_a_trapping_job_once_and_a_clean_exit_is_reported_truthfully(
    harness: Harness,
) -> None:
    entry = harness.script(
        "ckpt.py",
        """
        import os, pathlib, signal, time
        out = pathlib.Path(os.environ["OUT"])
        def on_term(signum, frame):
            with open(out / "terms", "a") as f:
                f.write("TERM\\n")
        signal.signal(signal.SIGTERM, on_term)
        print("ready")
        while not (out / "release").exists():
            time.sleep(0.02)
        print("checkpoint saved")
        """,
    )
    harness.backend.start(harness.spec(20, entry, kind=EntrypointKind.PYTHON))
    harness.wait_log(20, "ready")
    assert not harness.backend.suspend_requested(20)
    harness.backend.signal_suspend(20)
    wait_until(lambda: (harness.workspace / "terms").exists(), what="the SIGTERM handler to run")
    # The reconcile loop repeats itself during the grace period: the job must be told only once.
    # (Repeats go out after the first signal was handled, so the kernel cannot merge them.)
    harness.backend.signal_suspend(20)
    harness.backend.signal_suspend(20)
    (harness.workspace / "release").touch()
    obs = harness.wait_final(20)[0]
    assert (obs.phase, obs.exit_code) == (RankPhase.SUCCEEDED, 0)
    assert obs.message == "exited with code 0 after suspend request"
    assert harness.backend.suspend_requested(20)
    assert (harness.workspace / "terms").read_text() == "TERM\n"
    assert harness.log(20)[-2:] == ["checkpoint saved", "[rota] exited with code 0 after suspend request"]


def test_a_suspend_lets_the_python_under_a_bash_entrypoint_finish_its_checkpoint(harness: Harness) -> None:
    """``bash job.sh`` dies of the SIGTERM at once; its Python, still saving, must not be killed with it."""
    harness.script(
        "ckpt.py",
        """
        import os, pathlib, signal, sys, time
        out = pathlib.Path(os.environ["OUT"])
        def on_term(signum, frame):
            time.sleep(1.5)  # writing the checkpoint
            (out / "saved").write_text("ok")
            print("checkpoint saved", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
        """,
    )
    entry = harness.script("job.sh", 'python3 "$(dirname "$0")/ckpt.py"\necho "after python"\n')
    harness.backend.start(harness.spec(25, entry))
    harness.wait_log(25, "ready")
    harness.backend.signal_suspend(25)
    obs = harness.wait_final(25)[0]
    assert (obs.phase, obs.exit_code, obs.message) == (RankPhase.KILLED, 143, "killed by SIGTERM (suspend)")
    assert (harness.workspace / "saved").read_text() == "ok"
    assert "checkpoint saved" in harness.log(25)


def test_after_a_suspend_the_group_is_killed_when_the_platform_stops_it(harness: Harness) -> None:
    """The wait for the rest of the group ends with the platform's kill at the end of the grace."""
    harness.script(
        "stubborn.py",
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
        """,
    )
    entry = harness.script("job.sh", 'python3 "$(dirname "$0")/stubborn.py"\n')
    harness.backend.start(harness.spec(26, entry))
    harness.wait_log(26, "ready")
    harness.backend.signal_suspend(26)
    shell = rank_supervisor.read_state(harness.root / "run" / "26", 0)
    assert shell is not None and shell.child_pid is not None
    wait_until(
        lambda: (rank_supervisor.proc_stat(shell.child_pid) or ("gone",))[0] == "Z",
        what="the shell to die of the SIGTERM (a zombie until its supervisor reaps it)",
    )
    time.sleep(0.3)  # a supervisor that kills the group at once would have done so by now
    assert {o.phase for o in harness.backend.observe(26).values()} == {RankPhase.RUNNING}
    harness.backend.stop(26, reason="suspend")
    obs = harness.wait_final(26)[0]
    assert obs.phase == RankPhase.KILLED
    assert obs.message == "killed by SIGTERM (suspend)"


def test_suspend_kills_a_job_with_default_sigterm_handling(harness: Harness) -> None:
    entry = harness.script("plain.py", "import time\nprint('ready')\ntime.sleep(60)\n")
    harness.backend.start(harness.spec(21, entry, kind=EntrypointKind.PYTHON))
    harness.wait_log(21, "ready")
    harness.backend.signal_suspend(21)
    obs = harness.wait_final(21)[0]
    assert (obs.phase, obs.exit_code, obs.message) == (RankPhase.KILLED, 143, "killed by SIGTERM (suspend)")


def test_a_job_ignoring_sigterm_keeps_running_until_stop_kills_it(harness: Harness) -> None:
    entry = harness.script(
        "stubborn.sh",
        """
        trap '' TERM
        i=0
        while true; do i=$((i+1)); echo $i > "$OUT/beat-$RANK"; sleep 0.02; done
        """,
    )
    harness.backend.start(harness.spec(22, entry, ranks=2))
    beats = [harness.workspace / f"beat-{rank}" for rank in (0, 1)]
    # Both ranks have installed their trap once they beat (a SIGTERM before that would kill them).
    wait_until(lambda: all(b.exists() for b in beats), what="the first heartbeat of both ranks")
    harness.backend.signal_suspend(22)
    after_signal = [int(b.read_text() or 0) for b in beats]
    wait_until(
        lambda: all(int(b.read_text() or 0) > n + 2 for b, n in zip(beats, after_signal, strict=True)),
        what="heartbeats after SIGTERM",
    )
    assert {o.phase for o in harness.backend.observe(22).values()} == {RankPhase.RUNNING}
    harness.backend.stop(22)
    harness.backend.stop(22)  # repeats are harmless
    obs = harness.wait_final(22, ranks=2)
    for o in obs.values():
        assert (o.phase, o.exit_code, o.message) == (RankPhase.KILLED, 137, "killed by SIGKILL (stop)")


def test_a_kill_that_ends_a_suspend_says_suspend_in_the_log(harness: Harness) -> None:
    entry = harness.script("stubborn.sh", "trap '' TERM\necho ready\nwhile true; do sleep 0.02; done\n")
    harness.backend.start(harness.spec(24, entry))
    harness.wait_log(24, "ready")
    harness.backend.signal_suspend(24)
    harness.backend.stop(24, reason="suspend")  # its grace period ran out
    harness.backend.stop(24)  # a stop after that does not rewrite why it was killed
    obs = harness.wait_final(24)[0]
    assert (obs.phase, obs.exit_code, obs.message) == (RankPhase.KILLED, 137, "killed by SIGKILL (suspend)")
    assert harness.log(24)[-1] == "[rota] killed by SIGKILL (suspend)"


def test_a_rank_asked_to_suspend_before_it_started_never_runs(harness: Harness) -> None:
    entry = harness.script("count.sh", COUNTING_JOB)
    run_dir = harness.backend.run_dir(23)
    run_dir.mkdir(parents=True)
    write_marker(run_dir, SUSPEND_MARKER)
    harness.backend.start(harness.spec(23, entry))
    obs = harness.wait_final(23)[0]
    assert (obs.phase, obs.message) == (RankPhase.KILLED, "suspend requested before the job started")
    assert starts(harness) == []


def test_sigterm_to_the_supervisor_is_forwarded_to_the_job(harness: Harness) -> None:
    entry = harness.script("plain.py", "import time\nprint('ready')\ntime.sleep(60)\n")
    harness.backend.start(harness.spec(24, entry, kind=EntrypointKind.PYTHON))
    harness.wait_log(24, "ready")
    supervisor = harness.state(24).supervisor_pid
    assert supervisor is not None
    os.kill(supervisor, signal.SIGTERM)
    obs = harness.wait_final(24)[0]
    assert (obs.phase, obs.exit_code) == (RankPhase.KILLED, 143)
    assert obs.message == "killed by SIGTERM (supervisor termination)"


def test_suspend_and_stop_of_unknown_attempts_are_harmless(harness: Harness) -> None:
    harness.backend.signal_suspend(999)
    harness.backend.stop(999)
    assert harness.backend.observe(999) == {}
    assert harness.backend.known_attempts() == set()
    harness.backend.release(999)


# --------------------------------------------------------------------------------------------
# Detachment, adoption, lost processes


SILENT_JOB = "echo ready\nexec sleep 60\n"


def test_a_new_backend_instance_adopts_running_ranks_after_a_portal_restart(harness: Harness) -> None:
    entry = harness.script("silent.sh", SILENT_JOB)
    harness.backend.start(harness.spec(30, entry))
    harness.wait_log(30, "ready")
    state = harness.state(30)
    assert state.supervisor_pid is not None
    assert state.child_pid is not None
    # Detached: not our child, not in our session; the job leads its own process group.
    assert os.getsid(state.supervisor_pid) != os.getsid(0)
    assert int(Path(f"/proc/{state.supervisor_pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) != os.getpid()
    assert os.getpgid(state.child_pid) == state.child_pid

    restarted = LocalBackend(harness.backend.run_root, LogStore(harness.store.root))
    assert restarted.known_attempts() == {30}
    obs = restarted.observe(30)[0]
    assert (obs.phase, obs.node, obs.started_at) == (RankPhase.RUNNING, "local-0", state.started_at)
    assert restarted.last_output_at(30) is not None
    restarted.stop(30)
    assert harness.wait_final(30)[0].phase == RankPhase.KILLED


def test_running_child_is_adopted_when_its_supervisor_is_killed_then_reported_killed(harness: Harness) -> None:
    entry = harness.script("silent.sh", SILENT_JOB)
    harness.backend.start(harness.spec(31, entry))
    harness.wait_log(31, "ready")
    state = harness.state(31)
    supervisor = state.supervisor()
    assert supervisor is not None
    os.kill(supervisor.pid, signal.SIGKILL)
    wait_until(lambda: not supervisor.is_alive(), what="the supervisor to die")
    obs = harness.backend.observe(31)[0]
    assert obs.phase == RankPhase.RUNNING
    assert obs.message == "adopted: supervisor gone, output is no longer captured"
    harness.backend.stop(31)
    obs = harness.wait_final(31)[0]
    assert (obs.phase, obs.message) == (RankPhase.KILLED, "lost: supervisor gone, process ended after stop request")


def test_rank_whose_supervisor_and_process_are_gone_is_reported_missing_not_failed(harness: Harness) -> None:
    """A crashed supervisor is no verdict on the job: MISSING makes the launcher requeue it."""
    entry = harness.script("silent.sh", SILENT_JOB)
    harness.backend.start(harness.spec(32, entry))
    harness.wait_log(32, "ready")
    state = harness.state(32)
    supervisor, child = state.supervisor(), state.child()
    assert supervisor is not None
    assert child is not None
    assert state.child_pgid is not None
    os.kill(supervisor.pid, signal.SIGKILL)
    wait_until(lambda: not supervisor.is_alive(), what="the supervisor to die")
    os.killpg(state.child_pgid, signal.SIGKILL)  # not the platform: no marker
    wait_until(lambda: not child.is_alive(), what="the job to die")
    obs = harness.backend.observe(32)[0]
    assert (obs.phase, obs.message) == (RankPhase.MISSING, "lost: supervisor and process gone")


def write_fake_running_state(harness: Harness, attempt_id: int, pid: int, ticks: int | None) -> Path:
    run_dir = harness.backend.run_dir(attempt_id)
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(json.dumps({"spec": {"chain_id": CHAIN, "ranks": []}}))
    (run_dir / "rank-0.claim").write_text("0\n")
    write_state(
        run_dir,
        RankState(
            rank=0,
            phase=RankPhase.RUNNING.value,
            boot_id=boot_id(),
            supervisor_pid=pid,
            supervisor_start_ticks=ticks,
            child_pid=pid,
            child_pgid=pid,
            child_start_ticks=ticks,
            started_at=time.time(),
        ),
    )
    return run_dir


def test_a_reused_pid_is_never_signalled(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    harness.extra_procs.append(stranger)
    ticks = proc_start_ticks(stranger.pid)
    assert ticks is not None
    write_fake_running_state(harness, 40, stranger.pid, ticks - 1)  # same pid, different process
    sent: list[tuple[int, int]] = []
    real_killpg = os.killpg
    monkeypatch.setattr(rank_supervisor.os, "killpg", lambda pg, sig: (sent.append((pg, sig)), real_killpg(pg, sig)))

    harness.backend.signal_suspend(40)
    harness.backend.stop(40)
    assert sent == []
    assert stranger.poll() is None
    obs = harness.backend.observe(40)[0]
    assert (obs.phase, obs.message) == (RankPhase.KILLED, "lost: supervisor gone, process ended after stop request")
    harness.backend.release(40)  # nothing of ours is alive
    assert harness.backend.known_attempts() == set()
    assert stranger.poll() is None

    # Control: with the true start time the same process *is* ours and gets signalled.
    write_fake_running_state(harness, 41, stranger.pid, ticks)
    assert harness.backend.observe(41)[0].phase == RankPhase.RUNNING
    harness.backend.stop(41)
    assert sent == [(stranger.pid, signal.SIGKILL)]
    assert stranger.wait(timeout=10) == -signal.SIGKILL


# --------------------------------------------------------------------------------------------
# Supervisor start-up failures and pending claims


def test_a_supervisor_that_cannot_be_spawned_fails_the_rank(harness: Harness, tmp_path: Path) -> None:
    entry = harness.script("ok.sh", "true\n")
    LocalBackend(harness.backend.run_root, harness.store, python=str(tmp_path / "no-python")).start(
        harness.spec(50, entry)
    )
    obs = harness.backend.observe(50)[0]
    assert obs.phase == RankPhase.FAILED
    assert obs.message.startswith("supervisor failed to start: ")
    LocalBackend(harness.backend.run_root, harness.store, python="/bin/false").start(harness.spec(51, entry))
    obs = harness.backend.observe(51)[0]
    assert obs.phase == RankPhase.FAILED
    assert obs.message.startswith("supervisor failed to start (exit 1); see ")


def test_a_claim_without_a_supervisor_is_pending_then_failed(harness: Harness) -> None:
    run_dir = harness.backend.run_dir(52)
    run_dir.mkdir(parents=True)
    claim = run_dir / "rank-0.claim"
    claim.write_text("1 0\n")
    assert harness.backend.observe(52)[0].phase == RankPhase.PENDING
    with pytest.raises(RankStillAliveError):
        harness.backend.release(52)  # it may still be starting
    old = time.time() - 31
    os.utime(claim, (old, old))
    obs = harness.backend.observe(52)[0]
    assert (obs.phase, obs.message) == (RankPhase.FAILED, "supervisor failed to start (no report after 30 s)")
    harness.backend.release(52)


# --------------------------------------------------------------------------------------------
# Release


def test_release_refuses_while_a_rank_is_alive_and_keeps_the_logs(harness: Harness) -> None:
    entry = harness.script("silent.sh", SILENT_JOB)
    harness.backend.start(harness.spec(60, entry))
    harness.wait_log(60, "ready")
    with pytest.raises(RankStillAliveError, match="still alive"):
        harness.backend.release(60)
    assert harness.backend.known_attempts() == {60}
    assert harness.backend.observe(60)[0].phase == RankPhase.RUNNING
    harness.backend.stop(60)
    harness.wait_final(60)

    def released() -> bool:
        try:
            harness.backend.release(60)
        except RankStillAliveError:
            return False  # the supervisor is still writing its last words
        return True

    wait_until(released, what="release to succeed")
    assert harness.backend.known_attempts() == set()
    assert not harness.backend.run_dir(60).exists()
    assert harness.backend.observe(60) == {}
    assert harness.log(60)[0] == "ready"
    harness.backend.release(60)  # again: harmless


# --------------------------------------------------------------------------------------------
# Imports


def test_supervisor_and_backend_import_no_django() -> None:
    code = (
        "import sys, apps.launcher.rank_supervisor, apps.launcher.backends.local, apps.logs.store;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'rest_framework', 'kubernetes'});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd="/",
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# Who a job runs as, and what it can see of the server (issue: a job read another user's token)


SERVER_SECRETS = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "MEILISEARCH_API_KEY")


def test_a_job_never_sees_the_servers_secrets_in_its_environment(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SERVER_SECRETS:
        monkeypatch.setenv(name, f"server-{name.lower()}")
    entry = harness.script("env.sh", "env | sort\n")
    harness.backend.start(harness.spec(50, entry, env={"ROTA_TASK_TOKEN": "the-jobs-own"}))
    assert harness.wait_final(50)[0].phase == RankPhase.SUCCEEDED
    names = {line.split("=", 1)[0] for line in harness.log(50) if "=" in line}
    assert "ROTA_TASK_TOKEN" in names and "RANK" in names
    assert sorted(names & set(SERVER_SECRETS)) == []
    assert not any("server-" in line for line in harness.log(50))


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_as_root_a_mapped_owners_job_runs_as_their_posix_account(harness: Harness) -> None:
    import shutil
    import tempfile

    workspace = Path(tempfile.mkdtemp(prefix="rota-owner-"))  # under /tmp: any account can enter it
    try:
        workspace.chmod(0o755)
        (workspace / "who.sh").write_text('echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME"\n')
        spec = dataclasses.replace(
            harness.spec(51, "who.sh"), workspace=str(workspace), uid=54321, gid=54322, uid_mapped=True
        )
        harness.backend.start(spec)
        assert harness.wait_final(51)[0].phase == RankPhase.SUCCEEDED
        assert harness.log(51)[-1] == f"uid=54321 gid=54322 groups=54322 home={workspace}"
        # the log and state files stay the supervisor's: the job cannot rewrite them
        assert harness.store.path(CHAIN, 51, 0).stat().st_uid == 0
        assert harness.backend.run_dir(51).stat().st_mode & 0o077 == 0
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_as_root_an_unmapped_owners_job_runs_as_the_server_user(harness: Harness) -> None:
    entry = harness.script("who.sh", "id -u\n")
    harness.backend.start(dataclasses.replace(harness.spec(52, entry), uid=10007, uid_mapped=False))
    assert harness.wait_final(52)[0].phase == RankPhase.SUCCEEDED
    assert harness.log(52)[-1] == "0"
