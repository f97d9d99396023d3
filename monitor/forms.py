"""Forms of the admin pages. Every control has a label; service errors land on the field at fault."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib.auth.models import Group
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.choices import Role
from apps.accounts.models import POSIX_ID_MAX, POSIX_ID_MIN, User
from apps.containers.choices import GroupKind
from apps.containers.models import ContainerGroupPolicy
from apps.core.errors import ApplicationError
from apps.web.choices import NoticeAudience
from apps.web.models import Notice
from monitor.services import JobsOnDeactivate

GROUP_NAME = re.compile(r"^[\w.@+-]{1,150}$")


def add_service_error(form: forms.BaseForm, exc: ApplicationError) -> None:
    """Put an ``ApplicationError``'s messages on the form's fields, and its message on the form
    when the fields do not already say it (services often mark a field "Taken." and explain above)."""
    said: set[str] = set()
    for name, errors in exc.fields.items():
        for error in errors:
            form.add_error(name if name in form.fields else None, error)
            said.add(error)
    if exc.message not in said:
        form.add_error(None, exc.message)


def split_names(value: str) -> list[str]:
    return sorted({part.strip() for part in re.split(r"[,\s]+", value or "") if part.strip()})


class _UserFieldsForm(forms.Form):
    nickname = forms.CharField(label=_("Nickname"), max_length=150, required=False)
    email = forms.EmailField(label=_("Email"), required=False)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.INTERNAL)
    team = forms.CharField(
        label=_("Team"),
        max_length=150,
        required=False,
        help_text=_("The shared group: team-mates see jobs shared with the team. Created if new."),
        widget=forms.TextInput(attrs={"list": "known-groups", "autocomplete": "off"}),
    )
    groups = forms.CharField(
        label=_("Groups"),
        required=False,
        help_text=_("Separated by commas, e.g. “internal, ops”. Admin groups grant admin powers."),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    posix_uid = forms.IntegerField(label=_("POSIX uid"), required=False, min_value=POSIX_ID_MIN, max_value=POSIX_ID_MAX)
    posix_gid = forms.IntegerField(label=_("POSIX gid"), required=False, min_value=POSIX_ID_MIN, max_value=POSIX_ID_MAX)

    def clean_groups(self) -> list[str]:
        names = split_names(self.cleaned_data.get("groups", ""))
        bad = [n for n in names if not GROUP_NAME.match(n)]
        if bad:
            raise forms.ValidationError(_("Not a valid group name: %(names)s") % {"names": ", ".join(bad)})
        return names

    def clean_team(self) -> str:
        team = (self.cleaned_data.get("team") or "").strip()
        if team and not GROUP_NAME.match(team):
            raise forms.ValidationError(_("Use letters, digits and . @ + - _ only."))
        return team


class UserCreateForm(_UserFieldsForm):
    username = forms.CharField(
        label=_("User name"),
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none"}),
    )
    issue_token = forms.BooleanField(
        label=_("Issue an API token now (shown once, to copy)"), required=False, initial=True
    )
    field_order = ["username", "nickname", "email", "role", "team", "groups", "posix_uid", "posix_gid", "issue_token"]

    def clean_username(self) -> str:
        name = self.cleaned_data["username"].strip()
        if not GROUP_NAME.match(name):
            raise forms.ValidationError(_("Use letters, digits and . @ + - _ only."))
        return name


class UserEditForm(_UserFieldsForm):
    def changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "nickname": data["nickname"],
            "email": data["email"],
            "role": data["role"],
            "team": data["team"] or None,
            "groups": data["groups"],
            "posix_uid": data["posix_uid"],
            "posix_gid": data["posix_gid"],
        }


class ActivationForm(forms.Form):
    active = forms.TypedChoiceField(
        label=_("Account"),
        choices=[("1", _("Active")), ("0", _("Deactivated"))],
        coerce=lambda v: v == "1",
    )
    jobs = forms.ChoiceField(
        label=_("Their unfinished jobs"),
        choices=[
            (JobsOnDeactivate.SUSPEND, _("Suspend them (they can be resumed later)")),
            (JobsOnDeactivate.STOP, _("Stop them")),
        ],
        initial=JobsOnDeactivate.SUSPEND,
        widget=forms.RadioSelect,
    )


class NodeActionForm(forms.Form):
    """Enable, disable (reason) or drain (reason and deadline) a node."""

    DEADLINES = [
        ("0", _("Now")),
        ("30", _("In 30 minutes")),
        ("60", _("In 1 hour")),
        ("240", _("In 4 hours")),
        ("1440", _("In 24 hours")),
        ("at", _("At a time…")),
    ]
    action = forms.ChoiceField(choices=[("enable", "enable"), ("disable", "disable"), ("drain", "drain")])
    reason = forms.CharField(label=_("Reason"), max_length=255, required=False)
    deadline = forms.ChoiceField(label=_("Running jobs are suspended"), choices=DEADLINES, required=False, initial="60")
    deadline_at = forms.DateTimeField(
        label=_("Deadline"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") in ("disable", "drain") and not (data.get("reason") or "").strip():
            self.add_error("reason", _("Say why (it is shown to users)."))
        if data.get("action") == "drain":
            choice = data.get("deadline") or "60"
            if choice == "at":
                if data.get("deadline_at") is None:
                    self.add_error("deadline_at", _("Pick the date and time."))
                else:
                    data["when"] = data["deadline_at"]
            else:
                data["when"] = timezone.now() + timedelta(minutes=int(choice))
        return data


class ContainerPolicyForm(forms.Form):
    """How one node group hosts development containers (``apps.containers.services.group_policy_set``)."""

    kind = forms.ChoiceField(label=_("Placement"), choices=GroupKind.choices)
    preemptible = forms.BooleanField(label=_("Training jobs may stop its containers"), required=False)
    idle_reclaim = forms.BooleanField(label=_("Stop idle containers"), required=False)
    idle_minutes = forms.IntegerField(label=_("Idle time before the warning (minutes)"), min_value=1, max_value=43200)
    grace_minutes = forms.IntegerField(label=_("Grace after the warning (minutes)"), min_value=0, max_value=43200)
    gpu_util_threshold = forms.IntegerField(label=_("GPU utilisation counted as idle (%)"), min_value=0, max_value=100)

    @classmethod
    def for_policy(cls, policy: ContainerGroupPolicy, **kwargs: Any) -> ContainerPolicyForm:
        initial = {
            "kind": policy.kind,
            "preemptible": policy.preemptible,
            "idle_reclaim": policy.idle_reclaim,
            "idle_minutes": policy.idle_seconds // 60,
            "grace_minutes": policy.grace_seconds // 60,
            "gpu_util_threshold": policy.gpu_util_threshold,
        }
        return cls(initial=initial, **kwargs)


MAX_DAYS_BY_DAY = 62
MAX_DAYS_BY_WEEK = 366


class UsagePeriodForm(forms.Form):
    """The period of the usage page (dates in the site's time zone, both included)."""

    start = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    by = forms.ChoiceField(
        label=_("Per"), choices=[("user", _("User")), ("team", _("Team")), ("group", _("Node group"))], initial="user"
    )
    step = forms.ChoiceField(label=_("Columns"), choices=[("day", _("Days")), ("week", _("Weeks"))], initial="day")

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        today = timezone.localdate()
        initial = {"start": today - timedelta(days=6), "end": today, "by": "user", "step": "day"}
        if data is not None:
            data = {**{k: str(v) for k, v in initial.items()}, **{k: v for k, v in data.items() if v}}
        super().__init__(data, initial=initial, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end, step = data.get("start"), data.get("end"), data.get("step")
        if start is None or end is None or step is None:
            return data
        if end < start:
            raise forms.ValidationError(_("The period ends before it starts: choose a “To” date on or after “From”."))
        days = (end - start).days + 1
        limit = MAX_DAYS_BY_DAY if step == "day" else MAX_DAYS_BY_WEEK
        if days > limit:
            raise forms.ValidationError(
                _("That is %(days)d days; choose at most %(limit)d days in columns of %(step)s.")
                % {"days": days, "limit": limit, "step": _("days") if step == "day" else _("weeks")}
            )
        return data


class NoticeForm(forms.ModelForm):
    """A notice to users. The group and the user are typed by name (a select of every user would
    be long); the model's own rules (audience ↔ target, end after start) report on these fields."""

    group = forms.CharField(
        label=_("Group"),
        max_length=150,
        required=False,
        help_text=_("For “members of a group”: a group or team name."),
        widget=forms.TextInput(attrs={"list": "known-groups", "autocomplete": "off"}),
    )
    user = forms.CharField(
        label=_("User"), max_length=150, required=False, help_text=_("For “one user”: their user name.")
    )
    starts_at = forms.DateTimeField(
        label=_("Shown from"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    )
    expires_at = forms.DateTimeField(
        label=_("Shown until"),
        required=False,
        help_text=_("Empty: until someone expires or deletes it."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    class Meta:
        model = Notice
        fields = ["title", "body", "severity", "audience", "starts_at", "expires_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None and not self.is_bound:
            self.initial.setdefault("starts_at", timezone.localtime().replace(second=0, microsecond=0))
        else:
            self.initial.setdefault("group", self.instance.group.name if self.instance.group_id else "")
            self.initial.setdefault("user", self.instance.user.username if self.instance.user_id else "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        audience = data.get("audience")
        group_name = (data.get("group") or "").strip()
        user_name = (data.get("user") or "").strip()
        self.instance.group = None
        self.instance.user = None
        if audience == NoticeAudience.GROUP:
            group = Group.objects.filter(name=group_name).first() if group_name else None
            if group_name and group is None:
                self.add_error("group", _("No group is named %(name)s.") % {"name": group_name})
            self.instance.group = group
        elif audience == NoticeAudience.USER:
            person = User.objects.filter(username=user_name).first() if user_name else None
            if user_name and person is None:
                self.add_error("user", _("No user is named %(name)s.") % {"name": user_name})
            self.instance.user = person
        return data


class AuditFilterForm(forms.Form):
    """Filters of the audit log; every one is optional."""

    actor = forms.CharField(label=_("Actor"), max_length=150, required=False)
    action = forms.CharField(
        label=_("Action"), max_length=64, required=False, help_text=_("Exact, or a prefix such as “quota.”.")
    )
    target_type = forms.CharField(label=_("Object type"), max_length=64, required=False)
    target = forms.CharField(
        label=_("Object"), max_length=255, required=False, help_text=_("Its id or part of its name.")
    )
    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None and end < start:
            raise forms.ValidationError(_("The period ends before it starts: choose a “To” date on or after “From”."))
        return data
