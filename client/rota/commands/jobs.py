"""Jobs: ``rota submit`` (and HAI's ``python``/``bash``/``exec``), ``list``, ``status``, ``stop``, ``suspend``,
``resume``, ``tag``, ``star``, ``priority``."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from rota.api import TERMINAL_STATUSES, RotaClient
from rota.commands.common import (
    CONTEXT,
    DURATION,
    KINDS,
    ORDERINGS,
    PRIORITY,
    PRIORITY_NAMES,
    REASONS,
    STATUS_GROUPS,
    STATUSES,
    F,
    State,
    complete_group,
    complete_image,
    complete_job,
    json_option,
    parse_env,
    parse_when,
    pass_state,
    pending_text,
    priority_label,
)
from rota.commands.logs import follow_job
from rota.errors import ApiError, RotaError
from rota.output import Output, duration, status_cell, styled, when, when_short

# ---- submit --------------------------------------------------------------------------------


class SubmitCommand(click.Command):
    """Parses ``SCRIPT [ARGS...] -- [OPTIONS]`` (HAI's order) as well as ``[OPTIONS] SCRIPT [ARGS...]``.

    Everything after the script belongs to the script, so the script's own ``--flags`` never
    clash with Rota's; a ``--`` after the script's arguments starts Rota's options.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        if "--" in args:
            cut = args.index("--")
            before, after = args[:cut], args[cut + 1 :]
            # Platform options, then the script and its arguments (or options on both sides of it).
            args = [*after, "--", *before] if before and not before[0].startswith("-") else after + before
        return super().parse_args(ctx, args)


def detect_kind(script: str, explicit: str | None) -> str:
    """python for ``*.py``, bash for ``*.sh``, executable for anything else that can be run."""
    if explicit:
        return explicit
    lower = script.lower()
    if lower.endswith(".py"):
        return "python"
    if lower.endswith((".sh", ".bash")):
        return "bash"
    path = Path(script).expanduser()
    if path.is_file() and not os.access(path, os.X_OK):
        try:
            first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        except OSError:
            first = ""
        if first.startswith("#!") and "python" in first:
            return "python"
        if first.startswith("#!") and ("bash" in first or first.rstrip().endswith("/sh")):
            return "bash"
        raise click.UsageError(
            f"Cannot tell how to run {script}: give --kind python|bash|executable (or make it executable)."
        )
    return "executable"


def locate(script: str, kind: str, workspace: str | None) -> tuple[str, str]:
    """The workspace (an absolute directory) and the entrypoint inside it.

    Without ``--workspace`` the workspace is the script's directory; a bare program name
    (``nvidia-smi``) runs in the current directory and is looked up on the cluster's PATH.
    """
    if workspace:
        ws = os.path.abspath(os.path.expanduser(workspace))
        target = os.path.expanduser(script)
        if os.path.isabs(target):
            rel = os.path.relpath(target, ws)
            return ws, (target if rel.startswith("..") else rel)
        return ws, target
    path = os.path.abspath(os.path.expanduser(script))
    if os.path.isfile(path):
        return os.path.dirname(path), os.path.basename(path)
    if kind == "executable" and "/" not in script:
        return os.getcwd(), script
    raise click.UsageError(
        f"No such file: {script}. (Give --workspace DIR when the script exists only on the cluster.)"
    )


def default_group(state: State, api: RotaClient) -> str:
    """``$ROTA_GROUP``, else the one node group you have quota in, else the only node group."""
    if os.environ.get("ROTA_GROUP"):
        return os.environ["ROTA_GROUP"]
    quota = api.quota()
    groups = sorted({row["group"] for row in quota.get("node", []) if row.get("quota", 0) > 0})
    if len(groups) == 1:
        return groups[0]
    if not groups:
        groups = sorted(g["name"] for g in api.node_groups())
        if len(groups) == 1:
            return groups[0]
    known = ", ".join(groups) or "none"
    raise click.UsageError(f"Choose a node group with -g/--group (yours: {known}).")


def submit_options(func: F) -> F:
    """The options of ``submit`` and its HAI-style twins ``python``, ``bash``, ``exec``."""
    options = [
        click.argument("script", metavar="SCRIPT"),
        click.argument("script_args", metavar="[ARGS]...", nargs=-1, type=click.UNPROCESSED),
        click.option("-n", "--nodes", type=click.IntRange(min=1), default=1, show_default=True, help="Nodes (ranks)."),
        click.option(
            "-g",
            "--group",
            metavar="GROUP",
            shell_complete=complete_group,
            help="Node group (default: $ROTA_GROUP, or the one group you have quota in).",
        ),
        click.option(
            "-p",
            "--priority",
            type=PRIORITY,
            help="Priority: a name (LOW … EXTREME_HIGH, AUTO) or its number. Default AUTO: "
            "the highest level you still have quota for.",
        ),
        click.option(
            "-i",
            "--image",
            "--environment",
            "image",
            metavar="IMAGE",
            shell_complete=complete_image,
            help="Environment (image) to run in (default: yours; see `rota images`).",
        ),
        click.option(
            "-e",
            "--env",
            "env",
            metavar="NAME=VALUE",
            multiple=True,
            help="Environment variable for the job (repeatable); `-e NAME` copies it from this shell.",
        ),
        click.option("--name", help="Job name (default: the script's name, made unique).", metavar="NAME"),
        click.option("-t", "--tag", "tags", multiple=True, metavar="TAG", help="Tag the job (repeatable)."),
        click.option(
            "--workspace",
            metavar="DIR",
            help="Working directory on the cluster (default: the script's directory).",
        ),
        click.option(
            "--watchdog",
            type=click.IntRange(min=60),
            metavar="SECONDS",
            help="Stop the job as hung after this long without output (at least 60).",
        ),
        click.option(
            "--estimate",
            type=DURATION,
            metavar="DURATION",
            help="How long you expect the job to run (e.g. 6h, 90m, 1d12h). Not a limit: on a busy cluster it"
            " helps the job start sooner.",
        ),
        click.option("--share", is_flag=True, help="Let your team see the job."),
        click.option(
            "-f", "--follow", is_flag=True, help="Then follow its log until it ends (exit code as `logs -f`)."
        ),
        click.option("-r", "--rank", type=click.IntRange(min=0), default=0, help="Rank to follow with -f."),
        click.option("--dry-run", is_flag=True, help="Print what would be submitted, and submit nothing."),
    ]
    func = json_option(func)
    for option in reversed(options):
        func = option(func)
    return func


def do_submit(state: State, fixed_kind: str | None, **o: Any) -> None:
    """Submit one job from the parsed options (shared by ``submit``, ``python``, ``bash``, ``exec``)."""
    out = state.out
    kind = detect_kind(o["script"], fixed_kind or o.get("kind"))
    workspace, entrypoint = locate(o["script"], kind, o["workspace"])
    env = parse_env(o["env"])
    body: dict[str, Any] = {
        "name": o["name"],
        "workspace": workspace,
        "entrypoint": entrypoint,
        "kind": kind,
        "parameters": list(o["script_args"]),
        "env_vars": env,
        "group": o["group"],
        "nodes": o["nodes"],
        "priority": o["priority"],
        "environment": o["image"],
        "tags": list(o["tags"]),
        "watchdog_seconds": o["watchdog"],
        "run_estimate_seconds": o["estimate"],
        "shared_with_team": o["share"] or None,
    }
    base_name = o["name"] or (Path(entrypoint).stem or "job")
    if o["dry_run"]:
        body["name"] = base_name
        if state.json_mode:
            out.json({k: v for k, v in body.items() if v is not None})
        else:
            out.note("Dry run: nothing was submitted. The request would be:")
            for key, value in body.items():
                if value is not None:
                    out.line(f"  {key}: {value}")
        return
    api = state.client()
    if not body["group"]:
        body["group"] = default_group(state, api)
    with out.progress("Submitting…"):
        job = _submit_with_unique_name(api, body, base_name, explicit=bool(o["name"]))
    if state.json_mode and not o["follow"]:
        out.json(job)
        return
    key = job["id"]
    if state.json_mode:
        out.json_line(job)
    else:
        nodes = f"{job.get('nodes')} node{'s' if job.get('nodes') != 1 else ''}"
        out.line(
            Text.assemble(
                "Submitted job ",
                (str(key), "bold"),
                f" ({job.get('name')}): {nodes} in {job.get('group')}, priority {job.get('priority_name')}, "
                f"environment {job.get('environment')}.",
            )
        )
        out.hint(f"  follow its log: rota logs {key} -f")
        out.hint(f"  see its status: rota status {key}")
        out.hint(f"  stop it:        rota stop {key}")
        if job.get("url"):
            out.hint(f"  in the portal:  {job['url']}")
        if out.terminal and not o["follow"]:
            first_look(state, api, key)
    if o["follow"]:
        code = follow_job(state, api, key, rank=o["rank"], tail_lines=None, cursor=None, through_suspend=False)
        click.get_current_context().exit(code)


def first_look(state: State, api: RotaClient, key: int, seconds: float = 2.0) -> None:
    """On a terminal, wait briefly for the scheduler's verdict and say it: running where, or why not."""
    out = state.out
    deadline = time.monotonic() + seconds
    detail: dict[str, Any] = {}
    with out.progress("Waiting for the scheduler…"):
        while time.monotonic() < deadline:
            detail = api.experiment(key)
            if detail.get("status") != "waiting" or detail.get("pending"):
                break
            time.sleep(0.25)
    status = detail.get("status")
    pending = detail.get("pending")
    if pending and pending.get("infeasible"):
        out.warn(f"job {key} cannot start as submitted: {pending.get('message')}")
    elif pending:
        out.note(f"Job {key} is waiting: {pending_text(pending)}")
    elif status in {"starting", "running"}:
        ranks = ((detail.get("attempts") or [{}])[-1]).get("ranks") or []
        where = ", ".join(str(r.get("node")) for r in ranks)
        out.note(f"Job {key} is {status}" + (f" on {where}." if where else "."))


def _submit_with_unique_name(api: RotaClient, body: dict[str, Any], base: str, *, explicit: bool) -> dict[str, Any]:
    """Submit; when the default name is taken by an unfinished job, try ``name-2``, ``name-3`` …"""
    for n in range(1, 100):
        body["name"] = base if n == 1 else f"{base}-{n}"
        try:
            return api.submit(**body)
        except ApiError as exc:
            if explicit or exc.status != 409 or "name" not in exc.fields:
                raise
    raise ApiError(f"Too many unfinished jobs named {base}-N: give --name.", status=409, code="conflict")


SUBMIT_HELP = """Submit SCRIPT to run on the cluster.

SCRIPT's directory is the job's working directory (its workspace); it must be visible to the
cluster at the same path. Arguments after SCRIPT go to the script; Rota's options go after `--`
(or before SCRIPT). A *.py runs with Python, a *.sh with bash, anything else as an executable
(--kind overrides). Prints the job's id and how to watch it.

\b
Examples:
  rota submit train.py
  rota submit train.py --epochs 10 --lr 3e-4 -- -n 2 -g training -p HIGH
  rota submit train.py -- -n 4 -i pytorch-2.4 -e NCCL_DEBUG=INFO -e WANDB_API_KEY --name big-run
  rota submit run.sh data/ -- -p LOW -f          (submit, then follow its log)
  rota submit ./bin/bench -- -g training --kind executable
  rota submit -n 2 -g training train.py --epochs 10
"""


@click.command(cls=SubmitCommand, help=SUBMIT_HELP, context_settings={**CONTEXT, "allow_interspersed_args": False})
@submit_options
@click.option("-k", "--kind", type=click.Choice(KINDS), help="How to run SCRIPT (default: from its name).")
@pass_state
def submit(state: State, **options: Any) -> None:
    do_submit(state, None, **options)


def _hai_alias(name: str, kind: str, what: str) -> click.Command:
    """``rota python|bash|exec``: ``submit`` with a fixed kind, as HAI's hai-cli spelled it."""

    @click.command(
        name,
        cls=SubmitCommand,
        hidden=True,
        context_settings={**CONTEXT, "allow_interspersed_args": False},
        help=f"Submit {what} (HAI style; the same as `rota submit --kind {kind}`).\n\n"
        f"\b\nExamples:\n  rota {name} FILE ARGS... -- -n 2 -g training -p HIGH",
    )
    @submit_options
    @pass_state
    def alias(state: State, **options: Any) -> None:
        do_submit(state, kind, **options)

    return alias


ALIASES = [
    _hai_alias("python", "python", "a Python script"),
    _hai_alias("bash", "bash", "a bash script"),
    _hai_alias("exec", "executable", "an executable"),
]


# ---- list and status -----------------------------------------------------------------------


@click.command("list", context_settings=CONTEXT)
@click.option(
    "-s",
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES + STATUS_GROUPS, case_sensitive=False),
    help="Only jobs in this status, or group of statuses: pending, active, finished (repeatable).",
)
@click.option("--name", help="Name contains this.")
@click.option("-t", "--tag", "tags", multiple=True, help="Has this tag (repeatable: all must match).")
@click.option("--starred", is_flag=True, help="Only starred jobs.")
@click.option("-g", "--group", shell_complete=complete_group, help="Only this node group.")
@click.option("-p", "--priority", type=PRIORITY, help="Only this priority.")
@click.option("--owner", help="Only jobs of this user (jobs shared with you, or all for admins).")
@click.option(
    "--since", callback=lambda c, p, v: parse_when(v, p, c) if v else None, help="Created since (2024-05-01, 2h, 7d)."
)
@click.option("--until", callback=lambda c, p, v: parse_when(v, p, c) if v else None, help="Created before.")
@click.option("--sort", type=click.Choice(ORDERINGS), default="-id", show_default=True, help="Order.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--page-size", type=click.IntRange(1, 200), default=25, show_default=True)
@click.option("--all", "all_pages", is_flag=True, help="Every page, not just one.")
@click.option("-q", "--quiet", is_flag=True, help="Print only job ids, one per line.")
@json_option
@pass_state
def list_(
    state: State,
    statuses: tuple[str, ...],
    name: str | None,
    tags: tuple[str, ...],
    starred: bool,
    group: str | None,
    priority: str | None,
    owner: str | None,
    since: str | None,
    until: str | None,
    sort: str,
    page: int,
    page_size: int,
    all_pages: bool,
    quiet: bool,
) -> None:
    """List your jobs (and jobs shared with you), newest first.

    \b
    Examples:
      rota list
      rota list -s active                     (starting, running, suspending, stopping)
      rota list -s pending -g training        (waiting, suspended, held)
      rota list -t baseline -t lr-sweep --since 7d
      rota list --page 2 --page-size 50
      rota list -s running -q | xargs rota stop
    """
    api = state.client()
    filters: dict[str, Any] = {
        "status": [s.lower() for s in statuses] or None,
        "name": name,
        "tag": ",".join(tags) or None,
        "starred": True if starred else None,
        "group": group,
        "priority": priority,
        "owner": owner,
        "created_after": since,
        "created_before": until,
        "ordering": sort,
        "page_size": page_size,
    }
    out = state.out
    if all_pages:
        with out.progress("Fetching jobs…"):
            rows = list(api.pages("experiments/", **filters))
        count, first = len(rows), 1
        has_next = False
    else:
        body = api.experiments(page=page, **filters)
        rows, count = body.get("results", []), body.get("count", 0)
        first = (page - 1) * page_size + 1
        has_next = bool(body.get("next"))
    if state.json_mode:
        out.json({"count": count, "page": None if all_pages else page, "page_size": page_size, "results": rows})
        return
    if quiet:
        for row in rows:
            out.line(str(row["id"]))
        return
    owners = {row.get("owner") for row in rows}
    show_owner = len(owners) > 1 or bool(owner)
    headers = ["ID", "NAME", *(["OWNER"] if show_owner else []), "STATUS", "NODES", "GROUP", "PRIORITY", "CREATED"]
    headers += ["TAGS", "INFO"]
    table_rows = []
    for row in rows:
        info = pending_text(row.get("pending")) if row.get("status") in {"waiting", "suspended", "held"} else ""
        if row.get("restart_count"):
            info = (f"attempt {row['restart_count'] + 1}; " + info).rstrip("; ")
        star = "★ " if row.get("starred") else ""
        table_rows.append(
            [
                str(row["id"]),
                star + str(row["name"]),
                *([row.get("owner")] if show_owner else []),
                status_cell(row.get("status")),
                str(row.get("nodes")),
                row.get("group"),
                priority_label(row.get("priority")),
                when_short(row.get("created_at")),
                ",".join(row.get("tags") or []),
                info,
            ]
        )
    out.table(headers, table_rows, right=["ID", "NODES"], clip=["INFO"], empty="No jobs match.")
    if rows and not all_pages:
        last = first + len(rows) - 1
        out.note(f"Jobs {first}–{last} of {count}." + (f" Next page: add --page {page + 1}." if has_next else ""))


@click.command(context_settings=CONTEXT)
@click.argument("job", shell_complete=complete_job)
@json_option
@pass_state
def status(state: State, job: str) -> None:
    """Show a job: its state, attempts, ranks and nodes, and why it waits.

    For a waiting job it says why (quota, priority, no free nodes …), its place in the queue and
    which jobs hold the nodes it needs.

    \b
    Examples:
      rota status 42
      rota status train
      rota status train --json | jq '.attempts[-1].ranks'
    """
    detail = state.client().experiment(job)
    out = state.out
    if state.json_mode:
        out.json(detail)
        return
    print_detail(out, detail)


def print_detail(out: Output, d: dict[str, Any]) -> None:
    """A job's detail, as ``rota status`` shows it."""
    title = Text.assemble(("Job ", "bold"), (str(d["id"]), "bold"), "  ", (str(d["name"]), "bold"), "  ")
    title.append_text(status_cell(d.get("status")))
    out.line(title)
    effective = d.get("effective_priority")
    prio = d.get("priority_name") or priority_label(d.get("priority"))
    if effective is not None and PRIORITY_NAMES.get(effective) not in (None, prio):
        prio += f" (running as {priority_label(effective)})"
    command = " ".join(shlex.quote(p) for p in [d.get("entrypoint") or "", *(d.get("parameters") or [])])
    attempts = d.get("attempts") or []
    pairs: list[tuple[str, Any]] = [
        ("Owner", d.get("owner")),
        ("Group", f"{d.get('group')}, {d.get('nodes')} node{'s' if d.get('nodes') != 1 else ''}"),
        ("Priority", prio),
        ("Environment", d.get("environment") or "-"),
        ("Run", f"{d.get('kind')}: {command}"),
        ("Workspace", d.get("workspace")),
    ]
    if d.get("env_vars"):
        pairs.append(("Env", " ".join(f"{k}={shlex.quote(str(v))}" for k, v in d["env_vars"].items())))
    if d.get("tags") or d.get("starred"):
        pairs.append(("Tags", ("★ " if d.get("starred") else "") + ", ".join(d.get("tags") or [])))
    pairs += [
        ("Created", when(d.get("created_at"))),
        ("Started", when(d.get("started_at"))),
        ("Finished", when(d.get("finished_at"))),
        (
            "Runtime",
            f"{duration(d.get('runtime_seconds'))} over {len(attempts)} attempt{'s' if len(attempts) != 1 else ''}",
        ),
    ]
    if d.get("whole_life_state"):
        pairs.append(("Whole-life state", d["whole_life_state"]))
    pending = d.get("pending")
    if pending:
        text = styled(pending.get("message") or "", "yellow")
        text.append(f"  [{pending.get('code')}]", style="dim")
        pairs.append(("Waiting" if not pending.get("infeasible") else "Cannot run", text))
        if pending.get("queue_position"):
            pairs.append(("Queue position", pending["queue_position"]))
        holders = pending.get("holders") or []
        if holders:
            # For quota, a holder is the owner's own other job (often a newer one that took the freed node).
            quota = str(pending.get("code") or "").lower() == "quota"
            pairs.append(
                (
                    "Held up by",
                    "; ".join(
                        (
                            f"your own job {h.get('chain_id')}"
                            if quota
                            and h.get("user") == d.get("owner")
                            and h.get("chain_id") not in (None, d.get("id"))
                            else f"job {h.get('chain_id') or '?'} of {h.get('user')}"
                        )
                        + f" ({h.get('nodes')} node{'' if h.get('nodes') == 1 else 's'}, "
                        f"{priority_label(h.get('priority'))})"
                        for h in holders
                    ),
                )
            )
    if d.get("held"):
        pairs.append(("Held", "suspended by a person: `rota resume` starts it again"))
    out.fields(pairs)
    if attempts:
        out.line()
        rows = []
        for a in attempts:
            reason = a.get("failure_message") or a.get("stop_reason") or a.get("suspend_reason") or ""
            reason = REASONS.get(reason, reason) if reason != "completed" else ""
            rows.append(
                [
                    str(int(a.get("index") or 0) + 1),
                    str(a.get("id")),
                    status_cell(a.get("worker_status")),
                    when(a.get("started_at")),
                    when(a.get("finished_at")),
                    duration(a.get("runtime_seconds")),
                    "-" if a.get("exit_code") is None else str(a.get("exit_code")),
                    reason,
                ]
            )
        out.table(
            ["ATTEMPT", "ID", "STATUS", "STARTED", "FINISHED", "RUNTIME", "EXIT", "REASON"],
            rows,
            title="Attempts",
            right=["ATTEMPT", "ID", "EXIT"],
        )
        ranks = attempts[-1].get("ranks") or []
        if ranks:
            out.line()
            out.table(
                ["RANK", "NODE", "STATUS", "EXIT", "GPUS", "MESSAGE"],
                [
                    [
                        str(r.get("rank")),
                        r.get("node"),
                        status_cell(r.get("status")),
                        "-" if r.get("exit_code") is None else str(r.get("exit_code")),
                        ",".join(str(g) for g in r.get("gpus") or []) or "-",
                        r.get("message") or "",
                    ]
                    for r in ranks
                ],
                title=f"Ranks of attempt {int(attempts[-1].get('index') or 0) + 1}",
                right=["RANK", "EXIT"],
            )


# ---- actions -------------------------------------------------------------------------------

SETTLED = {
    "stop": lambda s: s in TERMINAL_STATUSES,
    "suspend": lambda s: s in {"held", "suspended", *TERMINAL_STATUSES},
    "resume": lambda s: s in {"running", *TERMINAL_STATUSES},
}
DONE_WORD = {"stop": "stopped", "suspend": "suspended (held)", "resume": "running again"}


def resume_queued_text(detail: dict[str, Any]) -> str:
    """What a resumed job that is not running yet will do ("queued to resume; position 2 in …"),
    instead of its status, which still says "suspended" until the scheduler's next pass."""
    status = str(detail.get("status") or "")
    if status not in {"suspended", "held", "waiting", "stopped", "failed"}:
        return ""
    pending = detail.get("pending") or {}
    if pending.get("infeasible"):
        return f"queued to resume, but it can never start as it is: {pending.get('message')}"
    position = pending.get("queue_position")
    where = f"; position {position} in the {detail.get('group')} queue" if position else ""
    return f"queued to resume{where} (`rota status {detail.get('id')}` says when it starts)"


def run_action(state: State, action: str, jobs: Sequence[str], wait: bool, timeout: float) -> None:
    """``stop``/``suspend``/``resume`` each job; with ``wait``, until it has settled."""
    api = state.client()
    out = state.out
    results: list[dict[str, Any]] = []
    first_error: RotaError | None = None
    for job in jobs:
        try:
            detail = api.action(job, action)
            if wait and not SETTLED[action](str(detail.get("status") or "")):
                detail = wait_for(state, api, str(detail["id"]), SETTLED[action], f"{action}", timeout)
        except ApiError as exc:
            if len(jobs) == 1:
                raise
            out.error(f"{job}: {exc.message}")
            first_error = first_error or exc
            continue
        results.append(detail)
        if not state.json_mode:
            line = Text.assemble(f"Job {detail['id']} ({detail['name']}): ")
            queued = resume_queued_text(detail) if action == "resume" else ""
            if queued:
                line.append(queued)
            else:
                line.append_text(status_cell(detail.get("status")))
            out.line(line)
    if state.json_mode:
        out.json(results[0] if len(jobs) == 1 else results)
    if first_error is not None:
        raise click.exceptions.Exit(int(first_error.exit_code))


def wait_for(
    state: State, api: RotaClient, key: str, done: Callable[[str], bool], verb: str, timeout: float
) -> dict[str, Any]:
    """Poll a job until ``done(status)``, with a spinner; give up (with an error) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    with state.out.progress(f"Waiting for job {key} to {verb}…") as spinner:
        while True:
            detail = api.experiment(key)
            if done(str(detail.get("status") or "")):
                return detail
            spinner.update(f"Waiting for job {key} to {verb}… ({detail.get('status')})")
            if time.monotonic() > deadline:
                raise RotaError(f"Job {key} is still {detail.get('status')} after {timeout:.0f} s.")
            time.sleep(0.3)


def _action_command(action: str, summary: str, details: str, examples: str) -> click.Command:
    @click.command(action, context_settings=CONTEXT, help=f"{summary}\n\n{details}\n\n\b\nExamples:\n{examples}")
    @click.argument("jobs", metavar="JOB...", nargs=-1, required=True, shell_complete=complete_job)
    @click.option("-w", "--wait", is_flag=True, help=f"Wait until the job is {DONE_WORD[action]}.")
    @click.option("--timeout", type=float, default=300.0, show_default=True, help="Give up waiting after SECONDS.")
    @json_option
    @pass_state
    def command(state: State, jobs: tuple[str, ...], wait: bool, timeout: float) -> None:
        run_action(state, action, jobs, wait, timeout)

    return command


ACTIONS = [
    _action_command(
        "stop",
        "Stop jobs.",
        "A waiting job is canceled at once; a running one gets SIGTERM, then SIGKILL after the grace period.",
        "  rota stop 42\n  rota stop train --wait\n  rota stop 41 42 43",
    ),
    _action_command(
        "suspend",
        "Suspend jobs: they checkpoint, free their nodes, and wait (held) until resumed.",
        "The job's processes get the suspend notice (SIGTERM; rota.job.receive_suspend_command() turns True) and "
        "have the grace period to save a checkpoint.",
        "  rota suspend train\n  rota suspend train --wait",
    ),
    _action_command(
        "resume",
        "Resume held jobs (or start a new attempt of a stopped or failed one).",
        "The job is queued again and starts when its quota and free nodes allow; its whole-life state is kept.",
        "  rota resume train\n  rota resume train --wait",
    ),
]


@click.command(context_settings=CONTEXT)
@click.argument("job", shell_complete=complete_job)
@click.argument("tags", nargs=-1, required=True, metavar="TAG...")
@click.option("-d", "--remove", is_flag=True, help="Remove the tags instead.")
@json_option
@pass_state
def tag(state: State, job: str, tags: tuple[str, ...], remove: bool) -> None:
    """Tag a job (or remove tags with -d). Tags are letters, digits, `_ . : -`.

    \b
    Examples:
      rota tag train baseline
      rota tag 42 lr-sweep v2
      rota tag 42 v2 --remove
    """
    api = state.client()
    detail: dict[str, Any] = {}
    for name in tags:
        detail = api.untag(job, name) if remove else api.tag(job, name)
    if state.json_mode:
        state.out.json(detail)
        return
    state.out.line(f"Job {detail['id']} ({detail['name']}) tags: {', '.join(detail.get('tags') or []) or '(none)'}")


@click.command(context_settings=CONTEXT)
@click.argument("job", shell_complete=complete_job)
@click.option("-d", "--remove", is_flag=True, help="Unstar it instead.")
@json_option
@pass_state
def star(state: State, job: str, remove: bool) -> None:
    """Star a job (starred jobs: `rota list --starred`).

    \b
    Examples:
      rota star train
      rota star train --remove
    """
    detail = state.client().star(job, not remove)
    if state.json_mode:
        state.out.json(detail)
        return
    state.out.line(f"Job {detail['id']} ({detail['name']}) is {'starred' if detail.get('starred') else 'not starred'}.")


@click.command(context_settings=CONTEXT)
@click.argument("job", shell_complete=complete_job)
@click.argument("level", type=PRIORITY, required=False)
@click.option("--rank", "custom_rank", type=float, help="Order among your own jobs of equal priority (lower first).")
@json_option
@pass_state
def priority(state: State, job: str, level: str | None, custom_rank: float | None) -> None:
    """Change a job's priority (and/or its rank among your jobs).

    \b
    Examples:
      rota priority train HIGH
      rota priority 42 10
      rota priority 42 --rank 1
    """
    if level is None and custom_rank is None:
        raise click.UsageError("Give a priority, --rank, or both.")
    detail = state.client().set_priority(job, priority=level, custom_rank=custom_rank)
    if state.json_mode:
        state.out.json(detail)
        return
    state.out.line(f"Job {detail['id']} ({detail['name']}): priority {priority_label(detail.get('priority'))}.")


COMMANDS = [submit, *ALIASES, list_, status, *ACTIONS, tag, star, priority]
