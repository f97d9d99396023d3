"""How states and reasons read on the pages: tones of status badges, and the scheduler's reason
codes as a translated headline plus what the user can do about it.

The scheduler's own message (``Attempt.pending_message``) is specific (numbers, job ids) and in
English; the portal shows it under the translated headline, so both languages get the gist and
the detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.experiments.choices import ChainStatus, RankStatus, WorkerStatus

TONES: dict[str, str] = {
    ChainStatus.WAITING: "wait",
    ChainStatus.SUSPENDED: "wait",
    ChainStatus.HELD: "held",
    ChainStatus.STARTING: "info",
    ChainStatus.RUNNING: "run",
    ChainStatus.SUSPENDING: "warn",
    ChainStatus.STOPPING: "warn",
    ChainStatus.SUCCEEDED: "ok",
    ChainStatus.FAILED: "err",
    ChainStatus.STOPPED: "muted",
    ChainStatus.CANCELED: "muted",
    WorkerStatus.QUEUED: "wait",
    RankStatus.PENDING: "wait",
    RankStatus.KILLED: "muted",
}


def tone(status: str) -> str:
    return TONES.get(status, "muted")


#: the label of every status a badge shows (a job's, an attempt's, a rank's; where the enums share a
#: value they share its label)
STATUS_LABELS: dict[str, str | Promise] = {
    **{s.value: s.label for s in RankStatus},
    **{s.value: s.label for s in WorkerStatus},
    **{s.value: s.label for s in ChainStatus},
}


def status_label(status: str) -> str:
    """The translated label of a status value, or the value itself when it is unknown.

    One dictionary lookup and one translation: the model's ``get_status_display()`` hashes every
    choice's lazy label (a translation each) on every call, ~11 per badge, which made status
    labels a tenth of a list page's rendering time (issue 19)."""
    label = STATUS_LABELS.get(status)
    return str(label) if label is not None else status


@dataclass(frozen=True)
class Reason:
    headline: str | Promise
    advice: str | Promise
    blocking: bool = False  # the job can never start as submitted


REASONS: dict[str, Reason] = {
    "quota": Reason(
        _("Waiting for your quota"),
        _(
            "Your running jobs already use all the nodes your quota allows at this priority in this group. "
            "It starts when one of them ends — or resubmit at a level where you have quota left."
        ),
    ),
    "priority": Reason(
        _("Waiting behind higher-priority jobs"),
        _("It starts when they end or are suspended. A higher priority, if you have quota for it, moves it up."),
    ),
    "no_nodes": Reason(
        _("Waiting for free nodes"),
        _("Every node of the group is busy with jobs it may not suspend. It starts as soon as nodes free up."),
    ),
    "fragmentation": Reason(
        _("Waiting for enough nodes at once"),
        _("A job starts on all its nodes at once. Fewer nodes would let it start sooner."),
    ),
    "reserved": Reason(
        _("Free nodes are reserved for a job that has waited longer"),
        _("The reservation keeps big jobs from starving; yours goes next in line."),
    ),
    "min_runtime": Reason(
        _("Waiting for running jobs to reach their minimum run time"),
        _("Jobs are only suspended after a minimum run time, so they are not interrupted over and over."),
    ),
    "checkpoint": Reason(
        _("Waiting for a running job to save a checkpoint"),
        _(
            "Non-urgent suspensions happen right after the job to be suspended saves a checkpoint, so that "
            "little work is lost; the detail below says how long it may take at most."
        ),
    ),
    "preempt_wait": Reason(
        _("Waiting a few minutes for nodes to free up before suspending others"),
        _(
            "Jobs end every few minutes on a busy cluster and a suspension costs the suspended job a restart, so a "
            "job below HIGH priority waits a little first; the detail below says when it will suspend them."
        ),
    ),
    "time_slice": Reason(
        _("Waiting for its turn (time-sharing)"),
        _("Jobs of equal priority take turns; it runs when the current job's time slice ends."),
    ),
    "waiting_for_suspend": Reason(
        _("Starting soon: jobs are being suspended to make room"),
        _("They save a checkpoint first; this takes at most their grace period."),
    ),
    "group_too_small": Reason(
        _("Cannot run: the node group has fewer nodes than requested"),
        _("Stop it, then resubmit with fewer nodes or in a larger group."),
        blocking=True,
    ),
    "quota_ceiling": Reason(
        _("Cannot run: it needs more nodes than your quota allows"),
        _("Resubmit with fewer nodes, or ask an admin for more quota in this group."),
        blocking=True,
    ),
    "environment": Reason(
        _("Cannot run: its environment is not available to you"),
        _("Resubmit with one of your environments, or ask an admin for access."),
        blocking=True,
    ),
    "retry_backoff": Reason(
        _("Waiting to retry: its last attempt could not start"),
        _(
            "The detail below says why and when it is tried again; each retry in a row waits longer. "
            "If the reason is its image or settings, stop it and resubmit with them fixed."
        ),
    ),
    "infeasible": Reason(
        _("Cannot run as submitted"),
        _("Read the detail below, then stop it and resubmit with changed settings."),
        blocking=True,
    ),
}

FIRST_LOOK = Reason(
    _("Waiting for the scheduler's first look"),
    _("The scheduler runs every few seconds; the reason and queue position appear here."),
)
HELD = Reason(
    _("Suspended: it waits until you resume it"),
    _("Resume it to put it back in the queue. It keeps its place among your jobs and its whole-life state."),
)


OTHER = Reason(_("Waiting"), _("The scheduler's detail is below."))


def reason_for(code: str) -> Reason:
    """The reason for a scheduler code (stored lower-case); the first-look text when there is none yet."""
    if not code:
        return FIRST_LOOK
    return REASONS.get(code.lower(), OTHER)


def own_quota_holders(*, code: str, holders: list[dict[str, Any]], owner: str, chain_id: int) -> list[int]:
    """Ids of the owner's other jobs that hold the quota a job waits for ("quota" reason only): a
    user whose newer job took the freed node should learn that it is their own job in the way."""
    if code.lower() != "quota":
        return []
    found: list[int] = []
    for h in holders:
        other = h.get("chain_id")
        if h.get("user") == owner and isinstance(other, int) and other != chain_id and other not in found:
            found.append(other)
    return found
