"""What a notification says, in the reader's language, as plain text (templates escape it)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from apps.notifications.choices import NotificationKind
from apps.notifications.models import Notification

MODERATION_ACTIONS = {
    "delete": gettext_lazy("deleted"),
    "hide": gettext_lazy("hid"),
    "unhide": gettext_lazy("showed again"),
    "lock": gettext_lazy("locked"),
    "unlock": gettext_lazy("unlocked"),
    "pin": gettext_lazy("pinned"),
    "unpin": gettext_lazy("unpinned"),
}


def who(notification: Notification) -> str:
    names = notification.actor_names
    if not names:
        return _("Someone")
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return _("%(a)s and %(b)s") % {"a": names[-1], "b": names[-2]}
    others = len(names) - 1
    return ngettext("%(a)s and %(n)d other", "%(a)s and %(n)d others", others) % {"a": names[-1], "n": others}


def describe(notification: Notification) -> str:
    values = {"who": who(notification), "title": notification.target_title, "n": notification.count}
    kind = notification.kind
    if kind == NotificationKind.REPLY:
        return (
            ngettext("%(who)s replied to “%(title)s”", "%(who)s replied %(n)d times to “%(title)s”", notification.count)
            % values
        )
    if kind == NotificationKind.QUOTE:
        return _("%(who)s quoted your reply in “%(title)s”") % values
    if kind == NotificationKind.LIKE:
        return _("%(who)s liked your writing in “%(title)s”") % values
    if kind == NotificationKind.MENTION:
        return _("%(who)s mentioned you in “%(title)s”") % values
    if kind == NotificationKind.MODERATION:
        action = MODERATION_ACTIONS.get(notification.detail)
        action_text = str(action) if action else notification.detail
        return _("A moderator %(action)s your writing in “%(title)s”") % {**values, "action": action_text}
    if kind == NotificationKind.CONTAINER:
        return _("Your container “%(title)s” is idle and will be stopped soon: open it and keep it") % values
    return notification.target_title
