"""Template helpers of the portal: icons, status tones, durations, reasons, the JS strings."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from apps.accounts.models import User
from apps.core.priorities import Priority
from apps.core.reversing import reverse_pk
from apps.experiments.actions import chain_actions
from apps.experiments.choices import ChainAction
from apps.experiments.models import Attempt, Chain
from apps.experiments.selectors import attempt_runtime_seconds
from apps.web import presentation
from apps.web.selectors import chain_runtime_seconds

register = template.Library()


@register.simple_tag
def icon(name: str, css: str = "") -> SafeString:
    """An icon from the vendored Lucide sprite; decorative (the control around it has the label)."""
    return format_html(
        '<svg class="icon {}" aria-hidden="true" focusable="false"><use href="{}#i-{}"></use></svg>',
        css,
        sprite_url(),
        name,
    )


@functools.cache
def sprite_url() -> str:
    """The sprite's (hashed) static URL, looked up once: a list page draws about a hundred icons."""
    return static("vendor/lucide/sprite.svg")


@receiver(setting_changed)
def _forget_sprite_url(*, setting: str, **kwargs: Any) -> None:
    if setting in ("STATIC_URL", "STORAGES", "STATIC_ROOT"):
        sprite_url.cache_clear()


@register.filter
def tone(status: str) -> str:
    return presentation.tone(status)


@register.filter
def status_label(status: str) -> str:
    """``{{ chain.status|status_label }}``: a job's, attempt's or rank's status, translated (cheaper
    than ``get_status_display``, see ``presentation.status_label``)."""
    return presentation.status_label(status)


@register.simple_tag
def status_badge(status: str, label: str | None = None) -> SafeString:
    """A status badge: the tone's colour, a dot and the label (the status's own unless given)."""
    return format_html(
        '<span class="badge tone-{}" data-status="{}"><span class="dot" aria-hidden="true"></span>{}</span>',
        presentation.tone(status),
        status,
        presentation.status_label(status) if label is None else label,
    )


@register.filter
def priority_name(value: int | None) -> str:
    if value is None:
        return "—"
    try:
        return Priority(int(value)).label
    except ValueError:
        return str(value)


def format_duration(seconds: float | None) -> str:
    """``3 d 4 h``, ``2 h 05 min``, ``4 min 09 s``, ``12 s`` (two units at most, translated)."""
    if seconds is None:
        return "—"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return _("%(d)d d %(h)d h") % {"d": days, "h": hours}
    if hours:
        return _("%(h)d h %(m)02d min") % {"h": hours, "m": minutes}
    if minutes:
        return _("%(m)d min %(s)02d s") % {"m": minutes, "s": secs}
    return _("%(s)d s") % {"s": secs}


@register.filter
def duration(seconds: float | None) -> str:
    return format_duration(seconds)


@register.filter
def chain_runtime(chain: Chain) -> float:
    return chain_runtime_seconds(chain)


@register.filter
def attempt_runtime(attempt: Attempt) -> float:
    return attempt_runtime_seconds(attempt)


@register.simple_tag(name="chain_actions")
def chain_actions_tag(chain: Chain, user: User) -> frozenset[ChainAction]:
    """``{% chain_actions chain user as actions %}``: what ``user`` may do to ``chain`` (a list row)."""
    return chain_actions(user=user, chain=chain)


@register.filter
def allows(actions: frozenset[ChainAction], name: str) -> bool:
    """``{% if actions|allows:"stop" %}``: an unknown action name is an error, not a silent no."""
    return ChainAction(name) in actions


@register.simple_tag
def reason(code: str, held: bool = False) -> presentation.Reason:
    return presentation.HELD if held else presentation.reason_for(code)


@register.filter
def nodes_label(count: int) -> str:
    return ngettext("%(n)d node", "%(n)d nodes", count) % {"n": count}


@register.filter
def iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


@register.filter(expects_localtime=True)
def minute(value: datetime | None) -> str:
    """``{{ t|minute }}`` reads as ``{{ t|date:"Y-m-d H:i" }}`` (in the page's time zone) without
    Django's format lookup, a tenth of its cost: list rows and job lines show one each."""
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


@register.simple_tag
def row_url(viewname: str, pk: int | None = None) -> str:
    """``{% row_url "web:chain-detail" chain.pk %}``: ``{% url %}`` for a view taking one integer
    key (or none), without walking the resolver for every row of a list (``apps.core.reversing``)."""
    return reverse_pk(viewname, pk)


@register.filter
def get_item(mapping: dict[Any, Any], key: Any) -> Any:
    return mapping.get(key) if mapping else None


@register.simple_tag
def js_strings() -> dict[str, str]:
    """Strings the scripts show, translated for the page's language (``json_script`` them)."""
    strings = {
        "live": _("Live"),
        "connecting": _("Connecting…"),
        "offline": _("Offline — updating every few seconds"),
        "copied": _("Copied"),
        "copyFailed": _("Could not copy; select the text and copy it yourself."),
        "requestFailed": _("The server did not answer. Check your connection and try again."),
        "sessionExpired": _("Your session has ended. Sign in again."),
        "confirm": _("Confirm"),
        "cancel": _("Cancel"),
        "selected": _("%(n)s selected"),
        "following": _("Following"),
        "paused": _("Paused"),
        "newLines": _("%(n)s new lines — click to follow"),
        "loading": _("Loading…"),
        "loadEarlier": _("Load earlier lines"),
        "loadLater": _("Load later lines"),
        "startOfLog": _("Start of the log"),
        "emptyLog": _("No output yet. Lines appear here as soon as the job prints them."),
        "emptyLogFinished": _("This rank printed nothing."),
        "attempt": _("Attempt %(n)s"),
        "attemptStarts": _("Attempt %(n)s starts"),
        "jobEnded": _("The job has ended (%(s)s). Nothing more will come."),
        "matches": _("%(n)s matches"),
        "noMatches": _("No matches"),
        "matchOf": _("%(i)s of %(n)s"),
        "searching": _("Searching…"),
        "ranksMatching": _("Ranks with matches:"),
        "linkCopied": _("Link to this line copied"),
        "linkToLine": _("Link to this line"),
        "truncatedResults": _("Only the first matches are listed."),
        "noMetrics": _("No metrics yet."),
        "step": _("Step"),
        "time": _("Time"),
        "justNow": _("just now"),
        "behind": _("Fell behind the live log; catching up…"),
        "notFound": _("Not found: it may have been removed, or you may not see it any more."),
        "durDH": _("%(d)d d %(h)d h"),
        "durHM": _("%(h)d h %(m)02d min"),
        "durMS": _("%(m)d min %(s)02d s"),
        "durS": _("%(s)d s"),
        "quotaAt": _("Your quota at %(p)s in %(g)s — nodes at once: %(n)s."),
        "quotaAuto": _("AUTO will use %(p)s, your highest level with quota in %(g)s (nodes at once: %(n)s)."),
        "quotaNone": _("You have no quota at %(p)s in %(g)s: the job would wait. Pick another priority."),
        "quotaTooBig": _(
            "This asks for more nodes than your largest quota in %(g)s allows (%(n)s): it could never start."
        ),
        "followLive": _("following live"),
        "followPolling": _("following (checking every second)"),
        "lines": _("%(n)s lines loaded"),
        "rank": _("rank %(n)s"),
        "noOutputYet": _("Waiting for output…"),
        "searchFailed": _("The search failed: %(e)s"),
    }
    return strings
