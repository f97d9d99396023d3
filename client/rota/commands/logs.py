"""``rota logs``: print and follow a rank's log; the exit code says how the job ended."""

from __future__ import annotations

from typing import Any

import click

from rota.api import SUSPENDED_STATUSES, RotaClient
from rota.commands.common import (
    CONTEXT,
    JOB_EXIT_CODES,
    REASONS,
    State,
    complete_job,
    json_option,
    pass_state,
    pending_text,
)
from rota.errors import EXIT_CODE_TABLE, ExitCode, NetworkError, RotaError
from rota.output import Output

MAX_TAIL = 1024 * 1024


def tail_page(api: RotaClient, key: str, rank: int, lines: int) -> tuple[str, dict[str, Any]]:
    """The last ``lines`` lines of the latest attempt, and the page (whose cursor continues from there)."""
    nbytes = max(4096, lines * 200)
    while True:
        page = api.logs(key, rank=rank, tail=min(nbytes, MAX_TAIL))
        data = page.get("data") or ""
        got = data.splitlines(keepends=True)
        if len(got) > lines or len(data.encode("utf-8")) < nbytes or nbytes >= MAX_TAIL:
            return ("".join(got[-lines:]) if lines else ""), page
        nbytes *= 4


def _job_end_message(api: RotaClient, key: str, status: str) -> str:
    """A one-line summary of how the job ended (why it failed, with the failing rank's exit code)."""
    try:
        detail = api.experiment(key)
    except RotaError:
        return f"Job {key} {status}."
    attempt = (detail.get("attempts") or [{}])[-1]
    bits = []
    if attempt.get("failure_message"):
        bits.append(str(attempt["failure_message"]))
    else:
        if attempt.get("exit_code") not in (None, 0):
            bits.append(f"exit code {attempt['exit_code']}")
        failed = [r for r in attempt.get("ranks") or [] if r.get("status") == "failed"]
        if failed:
            bits.append("rank " + ", ".join(str(r.get("rank")) for r in failed))
        reason = attempt.get("stop_reason") if status in {"stopped", "canceled"} else attempt.get("suspend_reason")
        if reason and status != "succeeded":
            bits.append(REASONS.get(str(reason), str(reason)))
    suffix = f" ({'; '.join(bits)})" if bits else ""
    if status == "held":
        return f"Job {detail['id']} is held (suspended){suffix}; `rota resume {detail['id']}` starts it again."
    if status == "suspended":
        return f"Job {detail['id']} was suspended{suffix} and waits to resume."
    return f"Job {detail['id']} {status}{suffix}."


def _infeasible_message(api: RotaClient, key: str) -> str:
    """Why a followed job can never start, and what to do about it."""
    try:
        detail = api.experiment(key)
    except RotaError:
        detail = {"id": key}
    why = str((detail.get("pending") or {}).get("message") or "")
    job = detail.get("id", key)
    return (
        f"Job {job} can never start as it is" + (f": {why}" if why else ".") + "\n"
        f"Stop it (`rota stop {job}`) and submit it again with fewer nodes or another priority,"
        " or ask an admin for quota."
    )


def _announce(api: RotaClient, out: Output, key: str, page: dict[str, Any], announced: str | None) -> str | None:
    """Say on stderr when a followed job waits (and why), and when it runs again; return what was said."""
    status = page.get("status")
    job = page.get("chain_id", key)
    if page.get("infeasible"):
        return announced  # the follow ends here, saying why (see follow_job)
    if status in {"waiting", "suspended", "held"} and page.get("eof") and status != announced:
        try:
            pending = pending_text(api.experiment(key).get("pending"))
        except RotaError:
            pending = ""
        tail = "" if status == "held" else "; waiting…"
        out.note(f"[rota] job {job} is {status}" + (f": {pending}" if pending else "") + tail)
        return status
    if announced and status in {"starting", "running"}:
        out.note(f"[rota] job {job} is {status}")
        return None
    return announced


def follow_job(
    state: State,
    api: RotaClient,
    key: str | int,
    *,
    rank: int,
    tail_lines: int | None,
    cursor: str | None,
    through_suspend: bool,
    follow: bool = True,
) -> int:
    """Print a rank's log (and follow it); return the exit code for how the job ended."""
    out = state.out
    key = str(key)
    if tail_lines is not None and cursor is None:
        text, last = tail_page(api, key, rank, tail_lines)
        cursor = last.get("cursor")
        if state.json_mode:
            out.json_line(last | {"data": text})
        else:
            out.raw(text)
        if not follow:
            return ExitCode.OK
        if last.get("finished"):
            out.note(_job_end_message(api, key, last.get("status", "")))
            return JOB_EXIT_CODES.get(last.get("status", ""), ExitCode.OK)

    def stop(page: dict[str, Any]) -> bool:
        if page.get("infeasible"):
            return True  # it would wait forever
        return not through_suspend and page.get("status") in SUSPENDED_STATUSES

    announced: str | None = None  # the waiting status last announced on stderr
    page: dict[str, Any] = {}
    try:
        for page in api.follow_logs(key, rank=rank, cursor=cursor, follow=follow, stop=stop, limit=MAX_TAIL // 4):
            cursor = page.get("cursor") or cursor
            if state.json_mode:
                out.json_line(page)
            elif page.get("data"):
                out.raw(page["data"])
            if follow and not state.json_mode:
                announced = _announce(api, out, key, page, announced)
    except NetworkError as exc:
        if follow and cursor:
            exc.message += f"\nContinue with: rota logs {key} -r {rank} -f --cursor {cursor}"
        raise
    except KeyboardInterrupt:
        out.note(f"\nStopped following. The job goes on; `rota stop {key}` stops it.")
        return ExitCode.INTERRUPTED
    if not follow:
        return ExitCode.OK
    if page.get("infeasible") and not page.get("finished"):
        out.note(_infeasible_message(api, key))
        return ExitCode.JOB_INFEASIBLE
    status = page.get("status") or ""
    code = JOB_EXIT_CODES.get(status, ExitCode.OK)
    if page.get("finished") or status in SUSPENDED_STATUSES:
        out.note(_job_end_message(api, key, status))
    return code


def _exit_code_help() -> str:
    lines = ["\b", "Exit codes:"]
    lines += [f"  {code:<4} {text}" for code, text in EXIT_CODE_TABLE]
    return "\n".join(lines)


LOGS_HELP = f"""Print a job's log (rank 0 unless -r), from the start across every attempt.

With -f it keeps printing new output live until the job ends, and the exit code tells how it
ended. A job that is suspended ends the follow with exit code 3 (add --through-suspend to wait
for it to resume); a job still waiting to start is waited for, unless it can never start as it
is (exit code 8, with the reason).

\b
Examples:
  rota logs 42
  rota logs train -f
  rota logs train -r 1 --tail 100 -f
  rota logs train -f --json | jq -r .data
  rota logs train -f; echo "the job ended with $?"

{_exit_code_help()}
"""


@click.command(help=LOGS_HELP, context_settings=CONTEXT)
@click.argument("job", shell_complete=complete_job)
@click.option("-r", "--rank", type=click.IntRange(min=0), default=0, show_default=True, help="Which rank's log.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the job ends.")
@click.option("--tail", "tail_lines", type=click.IntRange(min=0), metavar="N", help="Start with the last N lines.")
@click.option("--through-suspend", is_flag=True, help="With -f: keep following when the job is suspended.")
@click.option("--cursor", metavar="ATTEMPT:OFFSET", help="Continue from this position (printed on errors).")
@json_option
@pass_state
def logs(
    state: State, job: str, rank: int, follow: bool, tail_lines: int | None, through_suspend: bool, cursor: str | None
) -> None:
    api = state.client()
    code = follow_job(
        state, api, job, rank=rank, tail_lines=tail_lines, cursor=cursor, through_suspend=through_suspend, follow=follow
    )
    click.get_current_context().exit(int(code))


COMMANDS = [logs]
