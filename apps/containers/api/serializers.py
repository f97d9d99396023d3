"""Serializers of the containers API (shapes only; rules live in the services)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.cluster.models import Environment, NodeGroup
from apps.containers.layout import service_slots
from apps.containers.models import Container
from apps.containers.presentation import open_base, ssh_command


class ServiceInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=32)
    port = serializers.IntegerField(min_value=1, max_value=65535)
    protocol = serializers.ChoiceField(choices=["http", "tcp"], default="http")
    command = serializers.CharField(max_length=2000)


class ContainerWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=32)
    node_group = serializers.SlugRelatedField(slug_field="name", queryset=NodeGroup.objects.all())
    environment = serializers.SlugRelatedField(
        slug_field="name", queryset=Environment.objects.all(), required=False, allow_null=True
    )
    cpu = serializers.IntegerField(min_value=1, default=1)
    memory_gib = serializers.IntegerField(min_value=1, default=4)
    gpus = serializers.IntegerField(min_value=0, default=0)
    ssh = serializers.BooleanField(default=False)
    startup_script = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")
    services = ServiceInSerializer(many=True, required=False, default=list)
    start = serializers.BooleanField(default=True, help_text="Start it at once (default).")


class ContainerUpdateSerializer(serializers.Serializer):
    environment = serializers.SlugRelatedField(
        slug_field="name", queryset=Environment.objects.all(), required=False, allow_null=True
    )
    cpu = serializers.IntegerField(min_value=1, required=False)
    memory_gib = serializers.IntegerField(min_value=1, required=False)
    gpus = serializers.IntegerField(min_value=0, required=False)
    ssh = serializers.BooleanField(required=False)
    startup_script = serializers.CharField(max_length=20000, required=False, allow_blank=True)
    services = ServiceInSerializer(many=True, required=False)


class ServiceOutSerializer(serializers.Serializer):
    name = serializers.CharField()
    protocol = serializers.CharField()
    port = serializers.IntegerField()
    command = serializers.CharField()
    state = serializers.CharField()
    message = serializers.CharField()
    url = serializers.CharField(allow_null=True)


class ContainerSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    node_group = serializers.CharField(source="node_group.name")
    environment = serializers.CharField(source="environment.name", allow_null=True, default=None)
    node = serializers.CharField(source="node.name", allow_null=True, default=None)
    url = serializers.SerializerMethodField(
        help_text="Where JupyterLab opens (through the portal, or on the containers host with an Ingress)."
    )
    gpu_utilisation = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="The last GPU utilisation read of the running container's GPUs (%); null when unknown.",
    )
    ssh_command = serializers.SerializerMethodField()
    services = serializers.SerializerMethodField()
    pending_edits = serializers.BooleanField(source="has_pending_edits")
    idle_warned = serializers.SerializerMethodField()
    custom_services = serializers.SerializerMethodField()

    class Meta:
        model = Container
        fields = [
            "id",
            "owner",
            "name",
            "node_group",
            "environment",
            "cpu",
            "memory_gib",
            "gpus",
            "ssh",
            "startup_script",
            "custom_services",
            "status",
            "desired",
            "status_message",
            "stop_reason",
            "node",
            "run",
            "url",
            "ssh_command",
            "services",
            "pending_edits",
            "idle_warned",
            "queued_at",
            "started_at",
            "stopped_at",
            "last_activity_at",
            "gpu_utilisation",
            "created_at",
        ]

    def get_url(self, obj: Container) -> str:
        return f"{open_base(obj, absolute=True)}lab"

    def get_ssh_command(self, obj: Container) -> str | None:
        return ssh_command(obj)

    def get_idle_warned(self, obj: Container) -> bool:
        return obj.idle_warned_at is not None

    def get_custom_services(self, obj: Container) -> list[dict[str, Any]]:
        return [
            {"name": s.name, "port": s.port, "protocol": s.protocol, "command": s.command, "node_port": s.node_port}
            for s in obj.services.all()
        ]

    def get_services(self, obj: Container) -> list[dict[str, Any]]:
        """The services of the current run (or of the spec, when stopped) with what the launcher saw."""
        spec = obj.started_spec if obj.run else {}
        if not spec:
            spec = {
                "ssh": obj.ssh,
                "startup_script": obj.startup_script,
                "services": [
                    {"name": s.name, "port": s.port, "protocol": s.protocol, "command": s.command}
                    for s in obj.services.all()
                ],
            }
        states = obj.service_states or {}
        base = open_base(obj)
        return [
            {
                "name": slot.name,
                "protocol": slot.protocol,
                "port": slot.port,
                "command": slot.command,
                "state": (states.get(slot.name) or {}).get("phase", ""),
                "message": (states.get(slot.name) or {}).get("message", ""),
                "url": _service_url(base, slot.name) if slot.protocol == "http" else None,
            }
            for slot in service_slots(spec)
        ]


def _service_url(base: str, name: str) -> str:
    return base + ("lab" if name == "jupyter" else f"{name}/")


class QuotaUseSerializer(serializers.Serializer):
    group = serializers.CharField()
    containers = serializers.IntegerField()
    cpu = serializers.IntegerField()
    memory_gib = serializers.IntegerField()
    gpus = serializers.IntegerField()
    ports = serializers.IntegerField()
    quota = serializers.SerializerMethodField()

    def get_quota(self, obj: Any) -> dict[str, int]:
        q = obj.quota
        return {"containers": q.containers, "cpu": q.cpu, "memory_gib": q.memory_gib, "gpus": q.gpus, "ports": q.ports}


class ContainerLogSerializer(serializers.Serializer):
    service = serializers.CharField()
    run = serializers.IntegerField()
    data = serializers.CharField()  # type: ignore[assignment]  # the log text, as in the jobs' log API
    offset = serializers.IntegerField()
    next_offset = serializers.IntegerField()
    eof = serializers.BooleanField()
