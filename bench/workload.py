"""A deterministic synthetic cluster snapshot for benchmarking the scheduling policy.

``make_snapshot(n_nodes, n_running, n_waiting, seed)`` builds a busy cluster: four node groups of
different sizes split into rooms (about 1% of nodes not schedulable), forty users with per-(group,
priority) quotas and decayed usage, running attempts at every priority (some old ABOVE_NORMAL ones
due for aging, some young ones under the minimum run time, a few already suspending) and waiting
attempts at every priority including AUTO, 1 to 8 nodes, a few of them infeasible. The same
arguments always give the same snapshot.

Running attempts fill up to 95% of each group's schedulable nodes; multi-node runners appear as
long as the node budget allows, so with as many runners as nodes every runner holds one node and
the cluster is full (then starts can only come from suspending).
"""

from __future__ import annotations

import random

from apps.scheduler.policy import LEVELS, Node, PolicyConfig, Priority, Running, Snapshot, Waiting

NOW = 1_750_000_000.0

#: (group, share of the nodes, rooms)
GROUPS: tuple[tuple[str, float, int], ...] = (
    ("training", 0.55, 6),
    ("training_a100", 0.25, 4),
    ("inference", 0.15, 3),
    ("debug", 0.05, 2),
)

_SIZES = (1, 1, 1, 1, 1, 2, 2, 4, 4, 8)  # waiting jobs: half single-node, up to 8
_RUN_SIZES = (1, 1, 1, 1, 1, 1, 1, 2, 4, 8)
#: how often each level is asked for, among the levels the user has quota for
_WAIT_WEIGHTS: tuple[tuple[int, int], ...] = (
    (int(Priority.EXTREME_HIGH), 1),
    (int(Priority.VERY_HIGH), 2),
    (int(Priority.HIGH), 8),
    (int(Priority.ABOVE_NORMAL), 10),
    (int(Priority.NORMAL), 30),
    (int(Priority.UNDER_NORMAL), 10),
    (int(Priority.BELOW_NORMAL), 10),
    (int(Priority.LOW), 15),
)


def _quota_table(rng: random.Random, users: list[str]) -> dict[str, dict[tuple[str, int], int]]:
    quotas: dict[str, dict[tuple[str, int], int]] = {}
    for i, user in enumerate(users):
        q: dict[tuple[str, int], int] = {}
        external = i % 8 == 7  # HAI's external users: only the lowest levels
        for group, share, _ in GROUPS:
            scale = max(1, round(share * 40))
            if external:
                q[(group, int(Priority.BELOW_NORMAL))] = 2 * scale
                q[(group, int(Priority.LOW))] = 4 * scale
                continue
            q[(group, int(Priority.LOW))] = 8 * scale
            q[(group, int(Priority.BELOW_NORMAL))] = 4 * scale
            q[(group, int(Priority.UNDER_NORMAL))] = 4 * scale
            q[(group, int(Priority.NORMAL))] = 4 * scale
            q[(group, int(Priority.ABOVE_NORMAL))] = 2 * scale
            q[(group, int(Priority.HIGH))] = scale + rng.randrange(8)
            if i % 5 == 0:
                q[(group, int(Priority.VERY_HIGH))] = 8
            if i % 13 == 0:
                q[(group, int(Priority.EXTREME_HIGH))] = 8
        quotas[user] = q
    return quotas


def make_snapshot(n_nodes: int, n_running: int, n_waiting: int, seed: int = 0) -> Snapshot:
    rng = random.Random(seed)
    users = [f"user{i:02d}" for i in range(40)]
    quotas = _quota_table(rng, users)
    usage = {u: float(rng.randrange(0, 5_000_000)) for u in users}

    nodes: list[Node] = []
    group_nodes: dict[str, list[Node]] = {}
    start = 0
    for gi, (group, share, n_rooms) in enumerate(GROUPS):
        count = n_nodes - start if gi == len(GROUPS) - 1 else round(n_nodes * share)
        members = []
        for k in range(count):
            node = Node(
                name=f"{group}-{k:05d}",
                group=group,
                room=f"{group}-room{k % n_rooms}",
                schedulable=rng.random() >= 0.01,
            )
            members.append(node)
        nodes.extend(members)
        group_nodes[group] = members
        start += count

    running: list[Running] = []
    attempt = 1
    for gi, (group, share, _) in enumerate(GROUPS):
        members = group_nodes[group]
        k_g = n_running - len(running) if gi == len(GROUPS) - 1 else round(n_running * share)
        k_g = min(k_g, len(members))
        schedulable = [n.name for n in members if n.schedulable]
        others = [n.name for n in members if not n.schedulable]
        rng.shuffle(schedulable)
        pool = schedulable + others  # runners land on NotReady nodes only once the good ones are taken
        budget = max(k_g, int(0.95 * len(schedulable)))
        used = 0
        for i in range(k_g):
            room_for = budget - used - (k_g - i - 1)
            size = max(1, min(rng.choice(_RUN_SIZES), room_for))
            held = tuple(pool[used : used + size])
            used += size
            priority = rng.choice(LEVELS)
            user = rng.choice(users)
            age = rng.choice((60.0, 200.0, 900.0, 2400.0, 4000.0, 9000.0, 20000.0))
            started = NOW - age * (0.5 + rng.random())
            checkpoint = None if rng.random() < 0.3 else started + (NOW - started) * rng.random()
            running.append(
                Running(
                    attempt_id=attempt,
                    chain_id=f"c{attempt}",
                    user=user,
                    group=group,
                    priority=priority,
                    quota_priority=priority,
                    nodes=held,
                    started_at=started,
                    last_checkpoint_at=checkpoint,
                    suspending=rng.random() < 0.02,
                )
            )
            attempt += 1

    waiting: list[Waiting] = []
    group_weights = [share for _, share, _ in GROUPS]
    group_names = [g for g, _, _ in GROUPS]
    for _ in range(n_waiting):
        group = rng.choices(group_names, group_weights)[0]
        user = rng.choice(users)
        first = NOW - rng.random() * 20000
        queued = max(first, NOW - rng.random() * 10000)
        allowed = [(lvl, w) for lvl, w in _WAIT_WEIGHTS if quotas[user].get((group, lvl), 0) > 0]
        if rng.random() < 0.15:
            priority = int(Priority.AUTO)
        elif rng.random() < 0.02 or not allowed:
            priority = rng.choice(LEVELS)  # may be a level without quota: QUOTA_CEILING
        else:
            priority = rng.choices([lvl for lvl, _ in allowed], [w for _, w in allowed])[0]
        size = rng.choice(_SIZES)
        if rng.random() < 0.002:
            size = len(group_nodes[group]) + 1  # too big for its group
        waiting.append(
            Waiting(
                attempt_id=attempt,
                chain_id=f"c{attempt}",
                user=user,
                group=group if rng.random() >= 0.001 else "no-such-group",
                node_count=size,
                priority=priority,
                custom_rank=first if rng.random() < 0.9 else first - rng.random() * 1000,
                first_submitted_at=first,
                queued_at=queued,
                environment_ok=rng.random() >= 0.005,
            )
        )
        attempt += 1

    return Snapshot(
        now=NOW,
        nodes=tuple(nodes),
        running=tuple(running),
        waiting=tuple(waiting),
        quotas=quotas,
        usage=usage,
        config=PolicyConfig(),
    )
