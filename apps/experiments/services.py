"""What users (and admins) do to experiments: submit, stop, suspend, resume, tag, star, share,
change priority. Each service validates, checks object permissions, writes in one transaction,
and enqueues the scheduling or reconcile pass on commit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.posix import posix_account, unmapped_owners_refused
from apps.cluster.choices import NodeState
from apps.cluster.models import Environment, NodeGroup
from apps.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied, RateLimited
from apps.core.priorities import QUOTA_LEVELS, Priority, parse_priority
from apps.core.tasks import enqueue_on_commit
from apps.experiments import events, lifecycle
from apps.experiments.actions import chain_actions, may_act
from apps.experiments.choices import (
    ChainAction,
    ChainStatus,
    EntrypointKind,
    StopReason,
    SuspendReason,
    WorkerStatus,
)
from apps.experiments.feasibility import Ask, infeasibility
from apps.experiments.locks import lock_chain
from apps.experiments.models import Attempt, Chain, ChainTag
from apps.experiments.selectors import chain_visible
from apps.quotas.selectors import quota_resolve
from portal.realtime import chain_group, send_event_on_commit, team_group

NAME_RE = re.compile(r"^[^\x00-\x1f()/\\]{1,200}$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = re.compile(
    r"^(ROTA_|MARSV2_)|^(WORLD_SIZE|RANK|MASTER_ADDR|MASTER_PORT|MASTER_IP|CUDA_VISIBLE_DEVICES)$"
)
EXTERNAL_PRIORITIES = frozenset({Priority.AUTO, Priority.BELOW_NORMAL, Priority.LOW})
PRIORITY_UPDATE_INTERVAL = timedelta(seconds=10)
MAX_WATCHDOG_SECONDS = 30 * 86400
#: a run-time estimate is between a minute and this (longer is no estimate the scheduler can use)
MAX_RUN_ESTIMATE_SECONDS = 30 * 86400
BIGINT_RANGE = range(-(2**63), 2**63)  # the database's BigIntegerField


def _fail(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, fields={field: [message]})


def _require_actor(user: User, chain: Chain) -> None:
    """Refuse anyone but the owner and platform admins (``actions.may_act``); who may not even see
    the chain is told it does not exist."""
    if may_act(user=user, chain=chain):
        return
    if chain_visible(user=user, chain=chain):
        raise PermissionDenied(_("Only the owner of this job or an admin may do that."))
    raise NotFound(_("No such job."))


def _require_action(actor: User, chain: Chain, action: ChainAction, refusal: Callable[[], str] | None = None) -> None:
    """Refuse ``action`` unless ``chain_actions`` allows it: ``_require_actor``'s answer for someone
    who may not act on the chain, else a ``Conflict`` saying ``refusal()`` (or what was refused and
    why) when its state does not allow it. Callers pass ``chain`` as read under its lock, so its
    state cannot change before they write."""
    _require_actor(actor, chain)
    if action not in chain_actions(user=actor, chain=chain):
        message = (
            refusal()
            if refusal is not None
            else _("A job that is %(s)s cannot be changed that way (%(a)s).")
            % {"s": chain.get_status_display(), "a": action.label}
        )
        raise Conflict(message)


def _validate_priority(user: User, value: int | str) -> int:
    try:
        priority = parse_priority(value)
    except ValueError as exc:
        raise _fail("priority", str(exc)) from exc
    if user.role == Role.EXTERNAL and priority not in EXTERNAL_PRIORITIES and not user.is_platform_admin:
        raise _fail("priority", _("External users may submit at AUTO, BELOW_NORMAL or LOW only."))
    return int(priority)


def _validate_env_vars(env_vars: Any) -> dict[str, str]:
    if not isinstance(env_vars, dict):
        raise _fail("env_vars", _("Environment variables must be a mapping of NAME to value."))
    clean: dict[str, str] = {}
    for key, value in env_vars.items():
        if not isinstance(key, str) or not ENV_NAME_RE.match(key):
            raise _fail("env_vars", _("%(k)r is not a valid variable name.") % {"k": key})
        if RESERVED_ENV.match(key):
            raise _fail("env_vars", _("%(k)s is set by the platform and cannot be overridden.") % {"k": key})
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise _fail("env_vars", _("The value of %(k)s must be a string.") % {"k": key})
        clean[key] = str(value)
    return clean


def _validate_tags(tags: Any) -> list[str]:
    if not isinstance(tags, (list, tuple)):
        raise _fail("tags", _("Tags must be a list."))
    clean = sorted({str(t).strip() for t in tags if str(t).strip()})
    for tag in clean:
        if not TAG_RE.match(tag):
            raise _fail("tags", _("Tag %(t)r: use letters, digits, '_', '.', ':' or '-' (at most 64).") % {"t": tag})
    return clean


def _require_feasible(
    *, user: User, group: str, group_size: int, nodes: int, level: int, quotas: Mapping[tuple[str, int], int]
) -> None:
    """Refuse a job the scheduler would call infeasible (above the quota ceiling at its level, or
    at every level for AUTO), in the scheduler's own words (``feasibility.infeasibility``, which the
    pure policy asks too), which name the levels that would fit.
    """
    ask = Ask(user=user.username, group=group, node_count=nodes, priority=level)
    problem = infeasibility(ask, group_size, quotas)
    if problem is None:
        return
    _code, message = problem
    # The priority is what to change when another level would fit; else the size of the job.
    fits_elsewhere = any(quotas.get((group, int(lvl)), 0) >= nodes for lvl in QUOTA_LEVELS)
    field = "priority" if fits_elsewhere and level != Priority.AUTO else "nodes"
    raise ApplicationError(message, code="infeasible", fields={field: [message]})


@transaction.atomic
def experiment_submit(
    *,
    user: User,
    name: str,
    workspace: str,
    entrypoint: str,
    kind: str = EntrypointKind.PYTHON,
    parameters: list[str] | None = None,
    env_vars: dict[str, str] | None = None,
    group: str,
    nodes: int = 1,
    priority: int | str = Priority.AUTO,
    environment: str | None = None,
    tags: list[str] | None = None,
    watchdog_seconds: int | None = None,
    whole_life_state: int = 0,
    custom_rank: float | None = None,
    shared_with_team: bool = False,
    notes: str = "",
    run_estimate_seconds: int | None = None,
) -> Chain:
    """Submit a job: validate everything, create its chain and first attempt, ask for a pass.

    Raises ``ApplicationError`` naming the field at fault, with nothing written.
    """
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise _fail(
            "name", _("Give the job a name of 1–200 characters, without parentheses, slashes or control characters.")
        )
    if kind not in EntrypointKind.values:
        raise _fail("kind", _("Kind must be python, bash or executable."))
    workspace = (workspace or "").strip()
    if not workspace.startswith("/") or len(workspace) > 1024:
        raise _fail("workspace", _("The workspace must be an absolute directory path."))
    entrypoint = (entrypoint or "").strip()
    if not entrypoint or len(entrypoint) > 1024:
        raise _fail("entrypoint", _("Say which script or program to run."))
    if unmapped_owners_refused() and posix_account(user, host_lookup=True) is None:
        raise ApplicationError(
            _(
                "Jobs here run as their owner's Unix account, and %(user)s has none on this cluster. Ask"
                " an admin to set your POSIX uid (or to create a Unix account named %(user)s), then"
                " submit again."
            )
            % {"user": user.username},
            code="no_posix_account",
        )
    if settings.ROTA_BACKEND == "local":
        # On the local backend the workspace is on this machine: catch typos now, not at start time.
        if not os.path.isdir(workspace):
            raise _fail("workspace", _("No such directory on the cluster: %(p)s") % {"p": workspace})
        target = Path(entrypoint) if entrypoint.startswith("/") else Path(workspace) / entrypoint
        # A bare executable name (e.g. "nvidia-smi") is looked up on PATH at run time.
        if (kind != EntrypointKind.EXECUTABLE or "/" in entrypoint) and not target.is_file():
            raise _fail("entrypoint", _("No such file: %(p)s") % {"p": str(target)})
    if not isinstance(parameters or [], list):
        raise _fail("parameters", _("Parameters must be a list of strings."))
    params = [str(p) for p in (parameters or [])]
    env = _validate_env_vars(env_vars or {})
    tag_names = _validate_tags(tags or [])
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise _fail("nodes", _("A job needs at least one node."))
    node_group = NodeGroup.objects.filter(name=group).first()
    if node_group is None:
        known = ", ".join(NodeGroup.objects.values_list("name", flat=True)) or _("none")
        raise _fail("group", _("Unknown node group %(g)r (known: %(k)s).") % {"g": group, "k": known})
    size = node_group.nodes.exclude(state=NodeState.DISABLED).count()
    if nodes > size:
        raise _fail(
            "nodes",
            _("Group %(g)s has %(n)d usable node(s); this job asks for %(m)d.") % {"g": group, "n": size, "m": nodes},
        )
    level = _validate_priority(user, priority)
    quota = quota_resolve(user=user)
    env_name = environment or quota.default_environment
    if not env_name:
        raise _fail("environment", _("You may not use any environment yet; ask an admin for one."))
    env_obj = Environment.objects.filter(name=env_name).first()
    if env_obj is None:
        raise _fail("environment", _("Unknown environment %(e)r.") % {"e": env_name})
    if not quota.may_use_environment(env_name) and not user.is_platform_admin:
        raise _fail("environment", _("You may not use the environment %(e)r.") % {"e": env_name})
    _require_feasible(user=user, group=node_group.name, group_size=size, nodes=nodes, level=level, quotas=quota.node)
    if watchdog_seconds is not None and (
        not isinstance(watchdog_seconds, int) or not 60 <= watchdog_seconds <= MAX_WATCHDOG_SECONDS
    ):
        raise _fail("watchdog_seconds", _("The watchdog time must be between 60 seconds and 30 days."))
    if run_estimate_seconds is not None and (
        isinstance(run_estimate_seconds, bool)
        or not isinstance(run_estimate_seconds, int)
        or not 60 <= run_estimate_seconds <= MAX_RUN_ESTIMATE_SECONDS
    ):
        raise _fail("run_estimate_seconds", _("The expected run time must be between 60 seconds and 30 days."))
    if (
        isinstance(whole_life_state, bool)
        or not isinstance(whole_life_state, int)
        or whole_life_state not in BIGINT_RANGE
    ):
        raise _fail("whole_life_state", _("The whole-life state must be a 64-bit signed integer."))
    unfinished = Chain.objects.filter(owner=user, finished=False).count()
    if unfinished >= settings.ROTA_MAX_UNFINISHED_CHAINS_PER_USER:
        raise ApplicationError(
            _("You have %(n)d unfinished jobs, the most allowed. Stop some first.") % {"n": unfinished},
            code="too_many_jobs",
        )
    if Chain.objects.filter(owner=user, name=name, finished=False).exists():
        raise Conflict(
            _("You already have an unfinished job named %(n)r. Choose another name or stop that job.") % {"n": name},
            fields={"name": [_("Already in use by an unfinished job.")]},
        )
    chain = Chain(
        owner=user,
        name=name,
        workspace=workspace,
        entrypoint=entrypoint,
        kind=kind,
        parameters=params,
        env_vars=env,
        node_group=node_group,
        node_count=nodes,
        priority=level,
        environment=env_obj,
        environment_name=env_name,
        custom_rank=custom_rank,
        watchdog_seconds=watchdog_seconds,
        run_estimate_seconds=run_estimate_seconds,
        whole_life_state=whole_life_state,
        shared_with_team=shared_with_team,
        notes=notes,
    )
    try:
        with transaction.atomic():
            chain.save()
    except IntegrityError as exc:  # a concurrent submit with the same name won the race
        raise Conflict(
            _("You already have an unfinished job named %(n)r.") % {"n": name},
            fields={"name": [_("Already in use by an unfinished job.")]},
        ) from exc
    attempt = Attempt.objects.create(
        chain=chain, index=0, priority=level, whole_life_state=whole_life_state, watchdog_seconds=watchdog_seconds
    )
    Chain.objects.filter(pk=chain.pk).update(latest_attempt=attempt)
    chain.latest_attempt = attempt
    ChainTag.objects.bulk_create([ChainTag(chain=chain, name=t) for t in tag_names])
    lifecycle.emit_chain_status(chain=chain, attempt=attempt)
    enqueue_on_commit(lifecycle.SCHEDULE)
    return chain


def _latest(chain: Chain) -> Attempt:
    if chain.latest_attempt_id is None:
        raise NotFound(_("This job has no attempt."))
    return Attempt.objects.get(pk=chain.latest_attempt_id)


STOP_OUTCOMES: dict[str, str | None] = {
    WorkerStatus.STOPPED: None,
    WorkerStatus.SUCCEEDED: StopReason.MARKED_SUCCEEDED,
    WorkerStatus.FAILED: StopReason.MARKED_FAILED,
}


@transaction.atomic
def experiment_stop(*, actor: User, chain: Chain, outcome: str = WorkerStatus.STOPPED) -> Chain:
    """Stop a job: a waiting one is canceled at once; a running one is handed to the launcher.

    ``outcome`` succeeded or failed (HAI's ``stop --succeeded/--failed``) stops a job that has run
    and records it as succeeded or failed once its processes are gone; a waiting job can only be
    canceled. Allowed as ``chain_actions`` says (``STOP``, ``MARK_OUTCOME``).
    """
    if outcome not in STOP_OUTCOMES:
        raise _fail("outcome", _("Stop as stopped, succeeded or failed."))
    _require_actor(actor, chain)
    chain = lock_chain(chain.pk)
    if outcome == WorkerStatus.STOPPED:
        _require_action(actor, chain, ChainAction.STOP, refusal=lambda: _already_finished(chain))
    else:
        _require_action(
            actor,
            chain,
            ChainAction.MARK_OUTCOME,
            refusal=lambda: (
                _already_finished(chain)
                if chain.finished
                else _("This job has not run, so it can only be stopped (canceled), not marked %(o)s.") % {"o": outcome}
            ),
        )
    attempt = _latest(chain)
    reason = STOP_OUTCOMES[outcome] or (StopReason.USER if actor.pk == chain.owner_id else StopReason.ADMIN)
    if attempt.worker_status == WorkerStatus.QUEUED:
        lifecycle.attempt_mark_finished(attempt_id=attempt.pk, status=WorkerStatus.CANCELED, stop_reason=reason)
    elif attempt.worker_status != WorkerStatus.STOPPING:
        lifecycle.transition(
            attempt_id=attempt.pk,
            target=WorkerStatus.STOPPING,
            stop_reason=reason,
            stop_requested_at=timezone.now(),
        )
        lifecycle.sync_chain(chain_id=chain.pk)
        enqueue_on_commit(lifecycle.RECONCILE)
    elif outcome != WorkerStatus.STOPPED:  # already stopping: how it is recorded may still change
        Attempt.objects.filter(pk=attempt.pk, worker_status=WorkerStatus.STOPPING).update(stop_reason=reason)
    chain.refresh_from_db()
    return chain


def _already_finished(chain: Chain) -> str:
    return _("This job has already finished (%(s)s).") % {"s": chain.get_status_display()}


@transaction.atomic
def experiment_suspend(*, actor: User, chain: Chain) -> Chain:
    """Suspend a job: a running one gets the suspend notice and is requeued *held* (it waits
    for ``experiment_resume``); a waiting one is held where it is; one the scheduler is already
    suspending becomes a person's suspend, so it is held after. Allowed as ``chain_actions`` says."""
    _require_actor(actor, chain)
    chain = lock_chain(chain.pk)
    _require_action(
        actor,
        chain,
        ChainAction.SUSPEND,
        refusal=lambda: (
            _("This job is already suspended; resume it to let it run.")
            if chain.status == ChainStatus.HELD
            else _("Only a waiting or running job can be suspended (this one is %(s)s).")
            % {"s": chain.get_status_display()}
        ),
    )
    attempt = _latest(chain)
    reason = SuspendReason.USER if actor.pk == chain.owner_id else SuspendReason.ADMIN
    if attempt.worker_status == WorkerStatus.QUEUED:
        Chain.objects.filter(pk=chain.pk).update(held=True)
        Attempt.objects.filter(pk=attempt.pk).update(**lifecycle.hold_fields())
        lifecycle.sync_chain(chain_id=chain.pk)
        enqueue_on_commit(lifecycle.SCHEDULE)
    elif attempt.worker_status == WorkerStatus.SUSPENDING:
        # Already suspending for the scheduler: make it a person's suspend, so it is held after.
        Attempt.objects.filter(pk=attempt.pk, worker_status=WorkerStatus.SUSPENDING).update(suspend_reason=reason)
    else:
        lifecycle.attempt_request_suspend(attempt_id=attempt.pk, reason=reason)
        lifecycle.sync_chain(chain_id=chain.pk)
    chain.refresh_from_db()
    return chain


@transaction.atomic
def experiment_resume(*, actor: User, chain: Chain) -> Chain:
    """Resume a job: a held one may run again; a stopped, failed or canceled one gets a new
    attempt carrying its whole-life state. Allowed as ``chain_actions`` says."""
    _require_actor(actor, chain)
    chain = lock_chain(chain.pk)
    _require_action(actor, chain, ChainAction.RESUME, refusal=lambda: _not_resumable(chain))
    attempt = _latest(chain)
    if attempt.worker_status == WorkerStatus.QUEUED:
        Chain.objects.filter(pk=chain.pk).update(held=False)
        # The next scheduling pass writes the real explanation (or starts it).
        Attempt.objects.filter(pk=attempt.pk).update(pending_code="", pending_message="", pending_digest="")
        chain.held = False
    else:
        if Chain.objects.filter(owner=chain.owner, name=chain.name, finished=False).exclude(pk=chain.pk).exists():
            raise Conflict(_("Another unfinished job is named %(n)r; stop or rename it first.") % {"n": chain.name})
        lifecycle.requeue(chain=chain, previous=attempt)
    lifecycle.sync_chain(chain_id=chain.pk)
    enqueue_on_commit(lifecycle.SCHEDULE)
    chain.refresh_from_db()
    return chain


def _not_resumable(chain: Chain) -> str:
    if chain.status in (ChainStatus.WAITING, ChainStatus.SUSPENDED):
        return _("This job is already waiting to run.")
    if chain.status == ChainStatus.SUCCEEDED:
        return _("This job succeeded; submit it again to run it once more.")
    return _("This job is %(s)s; only a suspended or stopped job can be resumed.") % {"s": chain.get_status_display()}


@transaction.atomic
def experiment_tag(*, user: User, chain: Chain, tag: str) -> list[str]:
    _require_action(user, chain, ChainAction.EDIT)
    (name,) = _validate_tags([tag]) or [""]
    if not name:
        raise _fail("tag", _("Give a tag."))
    ChainTag.objects.get_or_create(chain=chain, name=name)
    return sorted(chain.tags.values_list("name", flat=True))


@transaction.atomic
def experiment_untag(*, user: User, chain: Chain, tag: str) -> list[str]:
    _require_action(user, chain, ChainAction.EDIT)
    ChainTag.objects.filter(chain=chain, name=tag.strip()).delete()
    return sorted(chain.tags.values_list("name", flat=True))


def experiment_star(*, user: User, chain: Chain, starred: bool = True) -> Chain:
    _require_action(user, chain, ChainAction.EDIT)
    Chain.objects.filter(pk=chain.pk).update(starred=starred)
    chain.starred = starred
    return chain


@transaction.atomic
def experiment_share(*, user: User, chain: Chain, shared: bool = True) -> Chain:
    """Share the job with the owner's team (read-only for them) or stop sharing it.

    Sharing sends the chain's status to the team; unsharing sends ``chain.visibility`` (after
    commit) so team-mates' open sockets drop their subscriptions and log follows of it."""
    _require_action(user, chain, ChainAction.EDIT)
    if shared and chain.owner.team_id is None:
        raise ApplicationError(_("You are not in a team, so there is nobody to share with."))
    team_id = lifecycle.shared_chain_teams([chain.pk]).get(chain.pk)  # before the change: who saw it
    Chain.objects.filter(pk=chain.pk).update(shared_with_team=shared)
    chain.shared_with_team = shared
    if shared:  # the team's open pages learn of it (their list shows it without a reload)
        lifecycle.emit_chain_status(chain=chain, attempt=_latest(chain))
    elif team_id is not None:  # team-mates' open sockets stop receiving its status and logs
        groups = [chain_group(chain.pk), team_group(team_id)]
        send_event_on_commit(groups, events.ChainVisibilityChanged(chain_id=chain.pk))
    return chain


@transaction.atomic
def experiment_set_priority(
    *, user: User, chain: Chain, priority: int | str | None = None, custom_rank: float | None = None
) -> Chain:
    """Change the requested priority and/or custom rank of an unfinished job (owner or admin, as
    ``chain_actions`` says; once per 10 s per job).

    The new priority applies to the waiting attempt and to attempts after a suspend; a running
    attempt keeps the level it was admitted at.
    """
    _require_actor(user, chain)
    if priority is None and custom_rank is None:
        raise ApplicationError(_("Give a priority, a custom rank, or both."))
    now = timezone.now()
    fields: dict[str, Any] = {"priority_updated_at": now}
    if priority is not None:
        fields["priority"] = _validate_priority(user, priority)
    if custom_rank is not None:
        fields["custom_rank"] = float(custom_rank)
    chain = lock_chain(chain.pk)
    _require_action(user, chain, ChainAction.SET_PRIORITY, refusal=lambda: _("This job has finished."))
    updated = (
        Chain.objects.filter(pk=chain.pk)
        .exclude(priority_updated_at__gt=now - PRIORITY_UPDATE_INTERVAL)
        .update(**fields)
    )
    if not updated:
        raise RateLimited(
            _("The priority of a job can be changed once every %(s)d seconds.")
            % {"s": PRIORITY_UPDATE_INTERVAL.seconds}
        )
    if "priority" in fields:
        Attempt.objects.filter(chain=chain, worker_status=WorkerStatus.QUEUED).update(priority=fields["priority"])
    enqueue_on_commit(lifecycle.SCHEDULE)
    chain.refresh_from_db()
    return chain


def experiment_require_feasible(*, chain: Chain, node_group: NodeGroup, priority: int) -> None:
    """Refuse to put ``chain`` in ``node_group`` at ``priority`` when the scheduler could never
    start it there: the group has fewer usable nodes than it asks for, or its owner's quota ceiling
    is below it (the submit's own check, in the scheduler's words)."""
    size = node_group.nodes.exclude(state=NodeState.DISABLED).count()
    if chain.node_count > size:
        raise _fail(
            "group",
            _("Group %(g)s has %(n)d usable node(s); this job asks for %(m)d.")
            % {"g": node_group.name, "n": size, "m": chain.node_count},
        )
    quota = quota_resolve(user=chain.owner)
    _require_feasible(
        user=chain.owner,
        group=node_group.name,
        group_size=size,
        nodes=chain.node_count,
        level=priority,
        quotas=quota.node,
    )


@transaction.atomic
def experiment_move_group(*, actor: User, chain: Chain, group: str) -> Chain:
    """Move a waiting (or held) job to another node group (owner or admin). Refused for a job that
    holds nodes (suspend it first) and where the scheduler could never start it (size, quota
    ceiling). Its stored explanation is cleared, a scheduling pass is asked for, and a
    ``chain.status`` event tells the pages showing it."""
    _require_actor(actor, chain)
    chain = lock_chain(chain.pk)
    _require_action(
        actor,
        chain,
        ChainAction.MOVE_GROUP,
        refusal=lambda: (
            _("Only a waiting job can move to another node group (this one is %(s)s); suspend it first.")
            % {"s": chain.get_status_display()}
        ),
    )
    attempt = _latest(chain)
    node_group = NodeGroup.objects.filter(name=group).first()
    if node_group is None:
        known = ", ".join(NodeGroup.objects.order_by("name").values_list("name", flat=True)) or _("none")
        raise _fail("group", _("Unknown node group %(g)r (known: %(k)s).") % {"g": group, "k": known})
    if node_group.pk == chain.node_group_id:
        raise Conflict(_("This job is already in %(g)s.") % {"g": node_group.name})
    experiment_require_feasible(chain=chain, node_group=node_group, priority=attempt.priority)
    Chain.objects.filter(pk=chain.pk).update(node_group=node_group)
    Attempt.objects.filter(pk=attempt.pk).update(
        pending_code="", pending_message="", pending_digest="", queue_position=None, pending_holders=[]
    )
    chain.refresh_from_db()
    lifecycle.emit_chain_status(chain=chain, attempt=attempt)
    enqueue_on_commit(lifecycle.SCHEDULE)
    return chain


def experiment_set_notes(*, user: User, chain: Chain, notes: str) -> Chain:
    _require_action(user, chain, ChainAction.EDIT)
    Chain.objects.filter(pk=chain.pk).update(notes=notes[:10000])
    chain.notes = notes[:10000]
    return chain
