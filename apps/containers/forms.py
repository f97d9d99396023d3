"""Forms of the containers page (the services decide; forms only shape input)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.cluster.models import Environment, NodeGroup


def parse_services(text: str) -> list[dict[str, Any]]:
    """One service per line: ``name:port[:tcp]=command``."""
    services = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        head, sep, command = line.partition("=")
        bits = head.strip().split(":")
        if not sep or len(bits) not in (2, 3) or not bits[1].strip().isdigit():
            raise forms.ValidationError(
                _("Line %(n)s: write name:port=command (or name:port:tcp=command).") % {"n": number}
            )
        services.append(
            {
                "name": bits[0].strip(),
                "port": int(bits[1]),
                "protocol": bits[2].strip() if len(bits) == 3 else "http",
                "command": command.strip(),
            }
        )
    return services


def services_text(services: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{s['name']}:{s['port']}{':tcp' if s['protocol'] == 'tcp' else ''}={s['command']}" for s in services
    )


class ContainerEditForm(forms.Form):
    environment = forms.ModelChoiceField(
        label=_("Environment"), queryset=Environment.objects.none(), required=False, to_field_name="name"
    )
    cpu = forms.IntegerField(label=_("CPU cores"), min_value=1, initial=1)
    memory_gib = forms.IntegerField(label=_("Memory (GiB)"), min_value=1, initial=4)
    gpus = forms.IntegerField(label=_("GPUs"), min_value=0, initial=0)
    ssh = forms.BooleanField(label=_("SSH server"), required=False)
    startup_script = forms.CharField(
        label=_("Start-up script"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text=_("Run with bash at every start, next to JupyterLab; its output is the 'startup' log."),
    )
    services = forms.CharField(
        label=_("Custom services"),
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 2, "class": "mono", "placeholder": "board:6006=tensorboard --logdir runs --port 6006"}
        ),
        help_text=_("One per line: name:port=command (HTTP, opened through the portal) or name:port:tcp=command."),
    )

    def __init__(self, *args: Any, environments: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if environments is not None:
            self.fields["environment"].queryset = environments  # type: ignore[attr-defined]

    def clean_services(self) -> list[dict[str, Any]]:
        return parse_services(self.cleaned_data.get("services") or "")


class ContainerCreateForm(ContainerEditForm):
    name = forms.CharField(label=_("Name"), max_length=32, help_text=_("Lower-case letters, digits and '-'."))
    node_group = forms.ModelChoiceField(label=_("Node group"), queryset=NodeGroup.objects.none(), to_field_name="name")
    start = forms.BooleanField(label=_("Start it now"), required=False, initial=True)

    field_order = [
        "name",
        "node_group",
        "environment",
        "cpu",
        "memory_gib",
        "gpus",
        "ssh",
        "startup_script",
        "services",
        "start",
    ]

    def __init__(self, *args: Any, groups: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if groups is not None:
            self.fields["node_group"].queryset = groups  # type: ignore[attr-defined]
