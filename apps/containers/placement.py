"""Where containers go: a pure bin-packing function over plain data (no Django, no database).

``place(nodes, placed, requests)`` decides, for containers waiting to run, which node each starts
on, given what the nodes hold already. It is called by the scheduling pass
(``apps.scheduler.driver``), which runs single-flight, so placements and training starts never race.

Rules:
- A node takes containers only if it is schedulable and no training job holds it.
- **Shared groups**: a node's CPUs, memory and GPUs are never over-committed: the sum of what its
  containers ask for stays within its capacity. Among the nodes a container fits on, the one left
  fullest afterwards wins (best fit), so small containers fill nodes already in use and whole
  nodes stay free for training jobs and big containers. A container prefers the node it ran on
  before when it still fits there (warm caches, same local files).
- **Dedicated groups**: a container takes a whole empty node.
- Requests are served in the order given (the caller sorts them first come, first served); one
  that fits nowhere is reported with a reason and does not block smaller ones behind it.

Everything is sorted before it is iterated, so the same input gives the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    name: str
    group: str
    cpu: int  # cores
    memory_bytes: int
    gpus: int
    schedulable: bool = True
    held_by_job: bool = False  # a training job's rank holds the whole node


@dataclass(frozen=True, slots=True)
class Placed:
    """A container already on a node (starting, running or stopping: it still holds its share)."""

    container_id: int
    node: str
    cpu: int
    memory_bytes: int
    gpus: int


@dataclass(frozen=True, slots=True)
class Request:
    container_id: int
    group: str
    cpu: int
    memory_bytes: int
    gpus: int
    dedicated: bool = False
    previous_node: str = ""


class Unplaced(str):
    """Why a request was not placed (a reason code; the message is composed by the caller)."""


NO_GROUP = Unplaced("no_nodes")  # the group has no schedulable node at all
TOO_BIG = Unplaced("too_big")  # bigger than every node of the group: can never start as asked
FULL = Unplaced("full")  # would fit an empty node, but every node is in use


@dataclass
class Result:
    placements: dict[int, str] = field(default_factory=dict)  # container id → node name
    unplaced: dict[int, Unplaced] = field(default_factory=dict)


@dataclass(slots=True)
class _Free:
    node: NodeCapacity
    cpu: int
    memory: int
    gpus: int
    count: int = 0  # containers on the node

    def fits(self, r: Request) -> bool:
        return self.cpu >= r.cpu and self.memory >= r.memory_bytes and self.gpus >= r.gpus

    def take(self, r: Request) -> None:
        self.cpu -= r.cpu
        self.memory -= r.memory_bytes
        self.gpus -= r.gpus
        self.count += 1

    def fullness_after(self, r: Request) -> tuple[float, ...]:
        """Sort key: fullest node after placing ``r`` first (GPUs weigh most, then memory, CPU)."""
        n = self.node

        def left(free: int, total: int) -> float:
            return (free / total) if total else 0.0

        return (
            left(self.gpus - r.gpus, n.gpus),
            left(self.memory - r.memory_bytes, n.memory_bytes),
            left(self.cpu - r.cpu, n.cpu),
        )


def place(nodes: Iterable[NodeCapacity], placed: Iterable[Placed], requests: Iterable[Request]) -> Result:
    """Place ``requests`` (in order) on ``nodes``, given the containers already ``placed``."""
    free: dict[str, _Free] = {}
    by_group: dict[str, list[_Free]] = {}
    group_nodes: dict[str, list[NodeCapacity]] = {}
    for node in sorted(nodes, key=lambda n: n.name):
        group_nodes.setdefault(node.group, []).append(node)
        slot = _Free(node, node.cpu, node.memory_bytes, node.gpus)
        free[node.name] = slot
        if node.schedulable and not node.held_by_job:
            by_group.setdefault(node.group, []).append(slot)
    for p in sorted(placed, key=lambda p: p.container_id):
        holder = free.get(p.node)
        if holder is not None:
            holder.cpu -= p.cpu
            holder.memory -= p.memory_bytes
            holder.gpus -= p.gpus
            holder.count += 1
    result = Result()
    for r in requests:
        candidates = by_group.get(r.group, [])
        usable = [n for n in group_nodes.get(r.group, []) if n.schedulable]
        if not usable:
            result.unplaced[r.container_id] = NO_GROUP
            continue
        if not any(r.cpu <= n.cpu and r.memory_bytes <= n.memory_bytes and r.gpus <= n.gpus for n in usable):
            result.unplaced[r.container_id] = TOO_BIG
            continue
        chosen: _Free | None
        if r.dedicated:
            fitting = [s for s in candidates if s.count == 0 and s.fits(r)]
            fitting.sort(key=lambda s: (s.node.name != r.previous_node, s.node.gpus, s.node.memory_bytes, s.node.name))
            chosen = fitting[0] if fitting else None
            if chosen is not None:
                # A dedicated container holds the whole node: nothing else may share it.
                chosen.take(r)
                chosen.cpu = chosen.memory = chosen.gpus = 0
        else:
            fitting = [s for s in candidates if s.fits(r)]
            previous = next((s for s in fitting if s.node.name == r.previous_node), None)
            chosen = previous or min(fitting, key=lambda s: (s.fullness_after(r), s.node.name), default=None)
            if chosen is not None:
                chosen.take(r)
        if chosen is None:
            result.unplaced[r.container_id] = FULL
        else:
            result.placements[r.container_id] = chosen.node.name
    return result


def node_use(placed: Iterable[Placed]) -> Mapping[str, tuple[int, int, int]]:
    """(cpu, memory, gpus) asked for by the containers on each node (for checks and pages)."""
    use: dict[str, tuple[int, int, int]] = {}
    for p in placed:
        c, m, g = use.get(p.node, (0, 0, 0))
        use[p.node] = (c + p.cpu, m + p.memory_bytes, g + p.gpus)
    return use
