"""The services of a container's run, in a fixed order: each is one process (one "rank" of the
run, one log file). Shared by the launcher (what to start) and the pages (which log is which)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.containers.choices import JUPYTER, JUPYTER_PORT, SSH, SSH_PORT, Protocol

STARTUP = "startup"


@dataclass(frozen=True)
class ServiceSlot:
    rank: int
    name: str
    protocol: str  # "http" | "tcp" | "" (the start-up script: no port)
    port: int  # the port inside the container (0 for the start-up script)
    command: str  # "" for the built-in services (the backend knows how to start them)

    @property
    def builtin(self) -> bool:
        return self.name in (JUPYTER, SSH, STARTUP)


def service_slots(spec: dict[str, Any]) -> list[ServiceSlot]:
    """JupyterLab first, then the start-up script (if any), SSH (if on), then custom services."""
    slots = [ServiceSlot(0, JUPYTER, Protocol.HTTP, JUPYTER_PORT, "")]
    if (spec.get("startup_script") or "").strip():
        slots.append(ServiceSlot(len(slots), STARTUP, "", 0, ""))
    if spec.get("ssh"):
        slots.append(ServiceSlot(len(slots), SSH, Protocol.TCP, SSH_PORT, ""))
    for s in spec.get("services") or ():
        slots.append(ServiceSlot(len(slots), str(s["name"]), str(s["protocol"]), int(s["port"]), str(s["command"])))
    return slots


def slot_named(spec: dict[str, Any], name: str) -> ServiceSlot | None:
    return next((s for s in service_slots(spec) if s.name == name), None)
