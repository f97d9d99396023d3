"""The job side of Rota's contract: what a training script calls while it runs on the platform.

    from rota import job

    state = job.get_whole_life_state()          # 0 on the first attempt
    for step in range(state, total_steps):
        train_one_step()
        if step % 100 == 0:
            save_checkpoint(step)
            job.set_whole_life_state(step)      # carried to the next attempt after a suspend
            job.report_checkpoint()             # losing this job now costs little
            job.log_metrics(step, loss=loss)    # charts in the portal
        if job.checkpoint_requested():          # a waiting job will suspend this one: save now, lose little
            save_checkpoint(step)
            job.set_whole_life_state(step)
            job.report_checkpoint()
        if job.receive_suspend_command():       # the platform wants the nodes back
            save_checkpoint(step)
            job.set_whole_life_state(step)
            job.go_suspend()                    # free the nodes now; the chain is requeued

Outside the platform (no ``ROTA_TASK_TOKEN``) every call is a no-op, so the same script runs on a
laptop. ``ROTA_SIMULATE_SUSPEND=<seconds>`` makes ``receive_suspend_command`` return True after
that long, to rehearse the suspend path anywhere.

The suspend notice arrives as SIGTERM on every rank (the standard container stop signal); this
module turns it into a flag instead of letting the default handler end the process at once. The
platform kills what is left after the grace period.

HAI-era scripts switch with one import: the calls of HAI's ``hfai.client`` job side have the same
names and arguments here (``receive_suspend_command``, ``go_suspend``, ``set_whole_life_state``,
``get_whole_life_state``, ``set_priority``, ``set_watchdog_time``, ``disable_warn``,
``EXP_PRIORITY``, ``WARN_TYPE``)::

    from rota import job as hfai_client      # was: import hfai.client as hfai_client

They talk HTTP to Rota's job runtime API with the attempt's own token, not pickles over raw TCP to a
per-job manager as HAI's do (docs/hai-compat.md says why).

Standard library only (``urllib``), so it imports in any interpreter a job runs with.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

__all__ = [
    "EXP_PRIORITY",
    "WARN_TYPE",
    "checkpoint_requested",
    "disable_warn",
    "get_whole_life_state",
    "go_suspend",
    "in_platform",
    "log_metrics",
    "receive_suspend_command",
    "report_checkpoint",
    "set_priority",
    "set_watchdog_time",
    "set_whole_life_state",
]


class EXP_PRIORITY:
    """Priority levels, HAI's names and numbers."""

    EXTREME_HIGH = 50
    VERY_HIGH = 40
    HIGH = 30
    ABOVE_NORMAL = 20
    NORMAL = 10
    UNDER_NORMAL = 8
    BELOW_NORMAL = 5
    LOW = 0
    AUTO = -1


class WARN_TYPE:
    """HAI's warning kinds for ``disable_warn`` (bit flags)."""

    COMPLETED = 1
    TERMINATING = 2
    LOG = 4
    INTERRUPT = 8


_suspend = threading.Event()
_started = time.monotonic()
_last_poll = 0.0
_POLL_INTERVAL = 5.0
_state_override: int | None = None
_checkpoint_asked = False  # the scheduler asked for a checkpoint (from the last status poll)
_checkpoint_reported = False


def _env(*names: str) -> str:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return ""


def in_platform() -> bool:
    """True when running as a Rota job (an attempt token is in the environment)."""
    return bool(_env("ROTA_TASK_TOKEN", "MARSV2_USER_TOKEN")) and bool(_env("ROTA_API_URL", "MARSV2_SERVER"))


def _on_sigterm(signum: int, frame: Any) -> None:
    _suspend.set()


def _install_handler() -> None:
    if not in_platform() or threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):  # not the main thread of the main interpreter
        signal.signal(signal.SIGTERM, _on_sigterm)


_install_handler()


def _call(method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    base = _env("ROTA_API_URL", "MARSV2_SERVER").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise RuntimeError(f"rota.job: ROTA_API_URL must be an http(s) URL, got {base!r}")
    url = base + "/api/v1/job/" + path
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) checked above
    request.add_header("Authorization", "Bearer " + _env("ROTA_TASK_TOKEN", "MARSV2_USER_TOKEN"))
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json")
    last_error: Exception | None = None
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
                return json.loads(raw) if raw else {}
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", {}).get("message", "")
            except Exception:
                message = ""
            raise RuntimeError(f"rota.job: {path} failed ({exc.code}): {message or exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last_error = exc
            time.sleep(0.5 * (attempt + 1))
    raise RuntimeError(f"rota.job: cannot reach the platform at {url}: {last_error}")


def _best_effort(method: str, path: str, body: dict[str, Any] | None = None) -> None:
    """Telemetry and state updates must not kill a training run when the platform is briefly
    unreachable: warn on stderr and go on (the job's own checkpoint files are what matter)."""
    try:
        _call(method, path, body)
    except RuntimeError as exc:
        print(f"{exc} (continuing)", file=sys.stderr, flush=True)


def receive_suspend_command(poll: bool = True) -> bool:
    """True once the platform has asked this job to suspend (and from then on).

    The notice is SIGTERM; with ``poll`` the platform is also asked at most every 5 seconds, for
    jobs whose SIGTERM went to another process.
    """
    if _suspend.is_set():
        return True
    simulate = os.environ.get("ROTA_SIMULATE_SUSPEND") or os.environ.get("SIMULATE_SUSPEND")
    if simulate and time.monotonic() - _started >= float(simulate):
        _suspend.set()
        return True
    if poll:
        _poll_status()
    return _suspend.is_set()


def _poll_status() -> None:
    """Ask the platform what this job should know, at most every 5 seconds."""
    global _last_poll, _checkpoint_asked
    if not in_platform() or time.monotonic() - _last_poll < _POLL_INTERVAL:
        return
    _last_poll = time.monotonic()
    try:
        status = _call("GET", "status/")
    except RuntimeError:
        return  # the SIGTERM path still works
    if status.get("suspend_requested"):
        _suspend.set()
    _checkpoint_asked = bool(status.get("checkpoint_requested"))


def checkpoint_requested(poll: bool = True) -> bool:
    """True when the scheduler has asked this job to save a checkpoint soon.

    A waiting job will suspend this one: saving a checkpoint now and calling ``report_checkpoint()``
    lets it be suspended right after, losing almost no work (otherwise the scheduler waits for the
    job's next checkpoint, at most ``ROTA_SCHED_CHECKPOINT_WAIT_SECONDS``, and the work since is lost).
    Answered from the job's status, asked at most every 5 seconds; ``report_checkpoint()`` clears it.
    ``ROTA_SIMULATE_CHECKPOINT_REQUEST=<seconds>`` makes it True after that long, to rehearse anywhere.
    """
    simulate = os.environ.get("ROTA_SIMULATE_CHECKPOINT_REQUEST")
    if simulate and not _checkpoint_reported and time.monotonic() - _started >= float(simulate):
        return True
    if poll:
        _poll_status()
    return _checkpoint_asked


def go_suspend(wait: float = 30.0) -> None:
    """Tell the platform this job is ready to stop now, then exit. Its nodes are freed at once
    and the chain is requeued (its whole-life state carried over)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if in_platform():
        rank = _env("RANK", "MARSV2_RANK")
        _call("POST", "go-suspend/", {"rank": int(rank)} if rank.isdigit() else {})
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:  # the platform ends the process
            time.sleep(0.2)
    sys.exit(0)


def set_whole_life_state(value: int) -> None:
    """Record an integer that the next attempt of this chain starts with (e.g. the last step saved)."""
    global _state_override
    value = int(value)
    _state_override = value
    if in_platform():
        _best_effort("POST", "whole-life-state/", {"whole_life_state": value})


def get_whole_life_state() -> int:
    """The whole-life state: what the previous attempt set (0 on the first attempt)."""
    if _state_override is not None:
        return _state_override
    raw = _env("ROTA_WHOLE_LIFE_STATE", "MARSV2_WHOLE_LIFE_STATE")
    return int(raw) if raw.lstrip("-").isdigit() else 0


def report_checkpoint() -> None:
    """Say a checkpoint was just saved: if the scheduler must suspend someone, this job loses least.
    It also answers a ``checkpoint_requested()``."""
    global _checkpoint_asked, _checkpoint_reported
    _checkpoint_asked = False
    _checkpoint_reported = True
    if in_platform():
        _best_effort("POST", "checkpoint/")


def log_metrics(step: int, **values: float) -> None:
    """Record metric values at ``step`` (shown as charts across the chain's attempts)."""
    if in_platform() and values:
        _best_effort("POST", "metrics/", {"step": int(step), "values": {k: float(v) for k, v in values.items()}})


def set_watchdog_time(seconds: int) -> None:
    """Stop the job as hung if it prints nothing for ``seconds`` (at least 60)."""
    if in_platform():
        _best_effort("POST", "watchdog/", {"seconds": int(seconds)})


def set_priority(priority: int | str) -> None:
    """Change this job's priority (a number or a name such as ``"HIGH"``; once per 10 s).

    Same rules as the owner's change: it applies to the attempts after a suspend; the running
    attempt keeps the level it was admitted at. Raises ``RuntimeError`` with the platform's reason
    when refused (e.g. a level an external user may not use).
    """
    if in_platform():
        _call("POST", "priority/", {"priority": str(priority)})


def disable_warn(warn_type: int) -> None:
    """HAI's call to silence its manager's warnings in the job log. Rota's platform writes no such
    warnings into a job's log, so there is nothing to silence; the mask is only checked."""
    mask = int(warn_type)
    if mask < 0 or mask > 15:
        raise ValueError("warn_type is a combination of WARN_TYPE flags (0–15)")
