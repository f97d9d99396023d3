"""Forms of the portal. Every control has a label; errors are attached to the field at fault."""

from __future__ import annotations

import re
import shlex
from datetime import datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from apps.accounts.choices import Role, TokenScope
from apps.accounts.models import User
from apps.core.errors import ApplicationError
from apps.core.priorities import QUOTA_LEVELS, Priority
from apps.experiments.choices import EntrypointKind
from apps.experiments.services import EXTERNAL_PRIORITIES, MAX_RUN_ESTIMATE_SECONDS
from apps.web.models import UserPreference

MAX_BATCH = 200
LIST_FIELDS = ("parameters", "env_vars", "tags")  # typed as text, submitted as lists/mappings
BATCH_ACTIONS = ("stop", "suspend", "resume", "tag", "untag")


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_UNITS = (86400, 3600, 60, 1)


def parse_duration(text: str) -> int | None:
    """Seconds in ``6h``, ``90m``, ``1d12h``, ``45s`` or a plain number of seconds; None if it is neither."""
    if text.isdigit():
        return int(text)
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()):
        return None
    return sum(int(part) * unit for part, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if part)


class SignInForm(AuthenticationForm):
    """User name and password, and whether to stay signed in after the browser closes."""

    remember = forms.BooleanField(label=_("Keep me signed in on this device"), required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"autocomplete": "username", "autocapitalize": "none"})
        self.fields["password"].widget.attrs.update({"autocomplete": "current-password"})


def choice_field(form: forms.BaseForm, name: str) -> forms.ChoiceField:
    return cast(forms.ChoiceField, form.fields[name])


def priority_choices(user: User) -> list[tuple[int, str]]:
    """Levels ``user`` may ask for, AUTO first (external users: AUTO, BELOW_NORMAL and LOW only)."""
    levels: list[Priority] = [Priority.AUTO, *QUOTA_LEVELS]
    if user.role == Role.EXTERNAL and not user.is_platform_admin:
        levels = [p for p in levels if p in EXTERNAL_PRIORITIES]
    return [(int(p), p.label) for p in levels]


class SubmitForm(forms.Form):
    """Every field of a submission (``apps.experiments.services.experiment_submit``)."""

    name = forms.CharField(
        label=_("Name"),
        max_length=200,
        help_text=_("How you will find the job; unique among your unfinished jobs."),
    )
    workspace = forms.CharField(
        label=_("Workspace"),
        max_length=1024,
        help_text=_("An absolute directory the cluster can see; the job runs in it."),
    )
    entrypoint = forms.CharField(
        label=_("Script or program"),
        max_length=1024,
        help_text=_("Relative to the workspace, e.g. train.py or scripts/run.sh."),
    )
    kind = forms.ChoiceField(label=_("Run as"), choices=EntrypointKind.choices, initial=EntrypointKind.PYTHON)
    parameters = forms.CharField(
        label=_("Arguments"),
        required=False,
        help_text=_("Passed to the script as in a shell, e.g. --lr 3e-4 --epochs 10."),
    )
    group = forms.ChoiceField(label=_("Node group"))
    nodes = forms.IntegerField(
        label=pgettext_lazy("count", "Nodes"),
        min_value=1,
        initial=1,
        help_text=_("Whole nodes; one rank runs on each."),
    )
    priority = forms.TypedChoiceField(
        label=_("Priority"),
        coerce=int,
        initial=int(Priority.AUTO),
        help_text=_("AUTO picks the highest level you still have quota for."),
    )
    environment = forms.ChoiceField(label=_("Environment"))
    env_vars = forms.CharField(
        label=_("Environment variables"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=_("One NAME=value per line."),
    )
    tags = forms.CharField(label=_("Tags"), required=False, help_text=_("Separated by spaces or commas."))
    watchdog_seconds = forms.IntegerField(
        label=_("Watchdog (seconds)"),
        required=False,
        min_value=60,
        help_text=_("Stop the job as hung after this long without output. Empty: the platform's default."),
    )
    run_estimate_seconds = forms.CharField(
        label=_("Expected run time"),
        required=False,
        max_length=32,
        help_text=_(
            "How long you expect the whole job to run, e.g. 6h, 90m or 1d12h. Optional: when the cluster is busy"
            " it helps the job start sooner. It is not a time limit: the job is never stopped for running longer."
        ),
    )
    whole_life_state = forms.IntegerField(
        label=_("Whole-life state"),
        required=False,
        initial=0,
        help_text=_("A number your job reads at start (e.g. the step to resume from); carried across attempts."),
    )
    custom_rank = forms.FloatField(
        label=_("Custom rank"),
        required=False,
        help_text=_("Orders your own waiting jobs of equal priority: lower starts first."),
    )
    shared_with_team = forms.BooleanField(label=_("Let my team see this job"), required=False)
    notes = forms.CharField(
        label=_("Notes"), required=False, max_length=10000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(
        self,
        *args: Any,
        user: User,
        groups: list[str],
        environments: list[str],
        default_workspace: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        if default_workspace:
            self.fields["workspace"].help_text = _(
                "An absolute directory the cluster can see; the job runs in it. Yours is %(path)s "
                "(your storage on the cluster): put your code there."
            ) % {"path": default_workspace}
        else:
            self.fields["workspace"].help_text = _(
                "An absolute directory the cluster can see; the job runs in it. No storage is set up "
                "for you yet: ask an admin which directory to use."
            )
        choice_field(self, "group").choices = [(g, g) for g in groups]
        choice_field(self, "environment").choices = [(e, e) for e in environments]
        choice_field(self, "priority").choices = priority_choices(user)
        if user.team_id is None:
            self.fields["shared_with_team"].disabled = True
            self.fields["shared_with_team"].help_text = _("You are not in a team.")
        for name in ("workspace", "entrypoint", "parameters", "env_vars", "tags"):
            self.fields[name].widget.attrs.setdefault("spellcheck", "false")
            self.fields[name].widget.attrs.setdefault("autocapitalize", "none")
        placeholders = {
            "name": _("e.g. resnet50-baseline"),
            "workspace": _("e.g. /home/you/project"),
            "entrypoint": "train.py",
            "parameters": "--epochs 10 --lr 3e-4",
            "env_vars": "NCCL_DEBUG=INFO",
            "tags": _("e.g. vision baseline"),
            "watchdog_seconds": "1800",
            "run_estimate_seconds": "6h",
        }
        for name, text in placeholders.items():
            self.fields[name].widget.attrs.setdefault("placeholder", text)
        self.fields["name"].widget.attrs.setdefault("autocomplete", "off")

    def clean_run_estimate_seconds(self) -> int | None:
        """A duration as people write it (``6h``, ``90m``, ``1d12h``, or plain seconds), in seconds."""
        text = (self.cleaned_data.get("run_estimate_seconds") or "").strip().lower().replace(" ", "")
        if not text:
            return None
        seconds = parse_duration(text)
        if seconds is None:
            raise forms.ValidationError(_("Write a duration such as 6h, 90m or 1d12h (or a number of seconds)."))
        if not 60 <= seconds <= MAX_RUN_ESTIMATE_SECONDS:
            raise forms.ValidationError(_("The expected run time must be between 1 minute and 30 days."))
        return seconds

    def clean_workspace(self) -> str:
        workspace = (self.cleaned_data.get("workspace") or "").strip()
        if not workspace.startswith("/"):
            raise forms.ValidationError(_("The workspace must be an absolute directory path."))
        return workspace

    def clean_parameters(self) -> list[str]:
        text = self.cleaned_data.get("parameters") or ""
        try:
            return shlex.split(text)
        except ValueError:
            raise forms.ValidationError(_("A quote is not closed.")) from None

    def clean_env_vars(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for number, raw in enumerate((self.cleaned_data.get("env_vars") or "").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line:
                raise forms.ValidationError(_("Line %(n)d: write NAME=value."), params={"n": number}, code="format")
            key, value = line.split("=", 1)
            values[key.strip()] = value
        return values

    def clean_tags(self) -> list[str]:
        return sorted({t for t in re.split(r"[\s,]+", self.cleaned_data.get("tags") or "") if t})

    def clean_whole_life_state(self) -> int:
        return self.cleaned_data.get("whole_life_state") or 0

    def service_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``experiment_submit`` (call after ``is_valid``)."""
        data = dict(self.cleaned_data)
        data["shared_with_team"] = bool(data.get("shared_with_team"))
        return data

    def attach_service_errors(self, exc: ApplicationError) -> None:
        """Put a service's errors next to the fields they name; anything else above the form."""
        placed = False
        for field, errors in exc.fields.items():
            if field in self.fields:
                for error in errors:
                    self.add_error(field, error)
                placed = True
        field_messages = {message for errors in exc.fields.values() for message in errors}
        if not placed or exc.message not in field_messages:
            self.add_error(None, exc.message)

    @staticmethod
    def initial_from(values: dict[str, Any]) -> dict[str, Any]:
        """Initial data for the form from ``experiment_submit`` arguments (lists shown as text)."""
        initial = dict(values)
        initial["parameters"] = shlex.join(values.get("parameters") or [])
        initial["env_vars"] = "\n".join(f"{k}={v}" for k, v in (values.get("env_vars") or {}).items())
        initial["tags"] = " ".join(values.get("tags") or [])
        return initial

    def current_values(self) -> dict[str, Any]:
        """What the form holds now as ``experiment_submit`` arguments: cleaned where valid, raw
        elsewhere (for the CLI preview, which follows the form as the user types)."""
        if self.is_bound:
            self.is_valid()
            cleaned = getattr(self, "cleaned_data", {})
            return {
                name: cleaned[name] if name in cleaned else (None if name in LIST_FIELDS else self.data.get(name))
                for name in self.fields
            }
        values = {**{name: field.initial for name, field in self.fields.items()}, **self.initial}
        try:
            values["parameters"] = shlex.split(values.get("parameters") or "")
        except ValueError:
            values["parameters"] = []
        env: dict[str, str] = {}
        for line in (values.get("env_vars") or "").splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                env[key.strip()] = value
        values["env_vars"] = env
        values["tags"] = (values.get("tags") or "").split()
        return values


class TokenCreateForm(forms.Form):
    """A new API token: name, scope and when it expires."""

    EXPIRY_CHOICES = [
        ("30", _("In 30 days")),
        ("7", _("In 7 days")),
        ("90", _("In 90 days")),
        ("365", _("In a year")),
        ("date", _("On a date…")),
        ("never", _("Never")),
    ]

    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("Where you will use it, e.g. “laptop” or “ci”."),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    scope = forms.ChoiceField(
        label=_("Scope"),
        choices=[(s.value, s.label) for s in (TokenScope.ALL, TokenScope.EXCEPT_JUPYTER, TokenScope.READ_ONLY)],
        initial=TokenScope.ALL,
    )
    expires = forms.ChoiceField(label=_("Expires"), choices=EXPIRY_CHOICES, initial="30")
    expires_on = forms.DateField(label=_("Expiry date"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        choice = data.get("expires")
        expires_at: datetime | None = None
        if choice == "date":
            day = data.get("expires_on")
            if day is None:
                self.add_error("expires_on", _("Choose the day the token stops working."))
            else:
                expires_at = timezone.make_aware(datetime.combine(day, time.max))
                if expires_at <= timezone.now():
                    self.add_error("expires_on", _("Choose a day in the future."))
        elif choice and choice != "never":
            expires_at = timezone.now() + timedelta(days=int(choice))
        data["expires_at"] = expires_at
        return data


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = UserPreference
        fields = ["language", "theme"]
        widgets = {"theme": forms.RadioSelect}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice_field(self, "language").choices = [("", _("The browser's language")), *settings.LANGUAGES]


class PriorityForm(forms.Form):
    priority = forms.TypedChoiceField(label=_("Priority"), coerce=int)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice_field(self, "priority").choices = priority_choices(user)


class MoveGroupForm(forms.Form):
    """Where to move a waiting job (``experiment_move_group``): one of the node groups the user may
    use (``selectors.usable_node_groups``, what the submit form offers)."""

    group = forms.ChoiceField(label=_("Node group"))

    def __init__(self, *args: Any, groups: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice_field(self, "group").choices = [(g, g) for g in groups]


class TagForm(forms.Form):
    tag = forms.CharField(label=_("Tag"), max_length=64)


class BatchForm(forms.Form):
    """An action on several jobs of the list at once."""

    action = forms.ChoiceField(
        label=_("Action"),
        choices=[
            ("stop", _("Stop")),
            ("suspend", _("Suspend")),
            ("resume", _("Resume")),
            ("tag", _("Add tag")),
            ("untag", _("Remove tag")),
        ],
    )
    tag = forms.CharField(label=_("Tag"), max_length=64, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        raw = self.data.getlist("ids") if hasattr(self.data, "getlist") else self.data.get("ids", [])
        self.raw_ids = [str(v) for v in raw]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        ids = sorted({int(v) for v in self.raw_ids if v.isdigit()})
        if not ids:
            raise forms.ValidationError(_("Select at least one job."))
        if len(ids) > MAX_BATCH:
            raise forms.ValidationError(_("Select at most %(n)d jobs at once."), params={"n": MAX_BATCH})
        if data.get("action") in ("tag", "untag") and not (data.get("tag") or "").strip():
            self.add_error("tag", _("Give the tag."))
        data["ids"] = ids
        return data
