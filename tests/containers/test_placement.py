"""The pure bin-packing: containers go where they fit, nodes are never over-committed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.containers.placement import FULL, NO_GROUP, TOO_BIG, NodeCapacity, Placed, Request, place

GIB = 2**30


def node(name: str, cpu: int = 8, mem: int = 32, gpus: int = 0, **kw) -> NodeCapacity:
    return NodeCapacity(name=name, group=kw.pop("group", "cpu"), cpu=cpu, memory_bytes=mem * GIB, gpus=gpus, **kw)


def req(cid: int, cpu: int = 1, mem: int = 4, gpus: int = 0, **kw) -> Request:
    return Request(container_id=cid, group=kw.pop("group", "cpu"), cpu=cpu, memory_bytes=mem * GIB, gpus=gpus, **kw)


def test_small_containers_fill_the_node_already_in_use_first():
    nodes = [node("a"), node("b")]
    placed = [Placed(container_id=1, node="b", cpu=4, memory_bytes=16 * GIB, gpus=0)]
    result = place(nodes, placed, [req(2, cpu=2, mem=8), req(3, cpu=2, mem=8), req(4, cpu=2, mem=8)])
    # b has room for two more; the third goes to a.
    assert result.placements == {2: "b", 3: "b", 4: "a"}
    assert result.unplaced == {}


def test_a_container_that_fits_nowhere_now_waits_and_does_not_block_smaller_ones():
    nodes = [node("a", cpu=8, mem=32)]
    placed = [Placed(container_id=1, node="a", cpu=6, memory_bytes=8 * GIB, gpus=0)]
    result = place(nodes, placed, [req(2, cpu=4), req(3, cpu=2)])
    assert result.placements == {3: "a"}
    assert result.unplaced == {2: FULL}


def test_reasons_for_too_big_and_for_no_ready_node():
    result = place([node("a", cpu=8)], [], [req(1, cpu=16)])
    assert result.unplaced == {1: TOO_BIG}
    result = place([node("a", schedulable=False)], [], [req(1)])
    assert result.unplaced == {1: NO_GROUP}
    result = place([node("a", group="gpu")], [], [req(1)])
    assert result.unplaced == {1: NO_GROUP}


def test_nodes_held_by_training_jobs_take_no_container():
    result = place([node("a", held_by_job=True), node("b")], [], [req(1)])
    assert result.placements == {1: "b"}
    result = place([node("a", held_by_job=True)], [], [req(1)])
    assert result.unplaced == {1: FULL}


def test_gpus_are_counted_per_node():
    nodes = [node("g1", gpus=2, group="gpu"), node("g2", gpus=2, group="gpu")]
    result = place(nodes, [], [req(1, gpus=1, group="gpu"), req(2, gpus=2, group="gpu"), req(3, gpus=1, group="gpu")])
    assert result.placements == {1: "g1", 2: "g2", 3: "g1"}


def test_dedicated_container_takes_a_whole_empty_node():
    nodes = [node("a", group="ded"), node("b", group="ded")]
    placed = [Placed(container_id=1, node="a", cpu=1, memory_bytes=GIB, gpus=0)]
    result = place(nodes, placed, [req(2, group="ded", dedicated=True), req(3, group="ded", dedicated=True)])
    assert result.placements == {2: "b"}
    assert result.unplaced == {3: FULL}


def test_a_container_goes_back_to_its_previous_node_when_it_fits():
    nodes = [node("a"), node("b")]
    placed = [Placed(container_id=1, node="a", cpu=2, memory_bytes=GIB, gpus=0)]
    assert place(nodes, placed, [req(2, previous_node="b")]).placements == {2: "b"}


nodes_st = st.lists(
    st.builds(
        lambda i, cpu, mem, gpus, ok, held: NodeCapacity(
            name=f"n{i}", group="g", cpu=cpu, memory_bytes=mem * GIB, gpus=gpus, schedulable=ok, held_by_job=held
        ),
        st.integers(0, 10_000),
        st.integers(1, 32),
        st.integers(1, 64),
        st.integers(0, 8),
        st.booleans(),
        st.booleans(),
    ),
    min_size=0,
    max_size=6,
    unique_by=lambda n: n.name,
)
requests_st = st.lists(
    st.tuples(st.integers(1, 16), st.integers(1, 32), st.integers(0, 4), st.booleans()), min_size=0, max_size=25
)


@settings(max_examples=300, deadline=None)
@given(nodes=nodes_st, wanted=requests_st, data=st.data())
def test_placement_never_over_commits_a_node_and_is_deterministic(nodes, wanted, data):
    # Some containers already placed (within capacity), then the queue.
    placed: list[Placed] = []
    for i, n in enumerate(nodes):
        if data.draw(st.booleans()):
            placed.append(
                Placed(
                    container_id=10_000 + i,
                    node=n.name,
                    cpu=n.cpu // 2,
                    memory_bytes=n.memory_bytes // 2,
                    gpus=n.gpus // 2,
                )
            )
    requests = [req(i, cpu=c, mem=m, gpus=g, group="g", dedicated=d) for i, (c, m, g, d) in enumerate(wanted)]
    result = place(nodes, placed, requests)
    assert place(list(reversed(nodes)), list(reversed(placed)), requests) == result  # order of nodes is irrelevant
    assert set(result.placements) | set(result.unplaced) == {r.container_id for r in requests}
    assert not set(result.placements) & set(result.unplaced)
    by_name = {n.name: n for n in nodes}
    for name, n in by_name.items():
        mine = [r for r in requests if result.placements.get(r.container_id) == name]
        if mine:
            assert n.schedulable and not n.held_by_job
        already = [p for p in placed if p.node == name]
        assert sum(r.cpu for r in mine) + sum(p.cpu for p in already) <= n.cpu
        assert sum(r.memory_bytes for r in mine) + sum(p.memory_bytes for p in already) <= n.memory_bytes
        assert sum(r.gpus for r in mine) + sum(p.gpus for p in already) <= n.gpus
        if any(r.dedicated for r in mine):
            assert len(mine) == 1 and not already
    # Whatever waits for lack of room really fits on no node's free capacity now... unless dedicated.
    for r in requests:
        if result.unplaced.get(r.container_id) == TOO_BIG:
            assert not any(
                n.schedulable and r.cpu <= n.cpu and r.memory_bytes <= n.memory_bytes and r.gpus <= n.gpus
                for n in nodes
            )
