"""The node API: who holds each node, as the viewer may see it, in a constant number of queries."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import UserFactory


def holders_by_node(client) -> dict[str, tuple[bool, dict | None]]:
    response = client.get("/api/v1/nodes/")
    assert response.status_code == 200
    return {n["name"]: (n["busy"], n["holder"]) for n in response.json()["results"]}


def test_nodes_say_who_holds_them_to_the_owner_and_admins_and_only_busy_to_others(
    cluster, submit, user, other_user, make_client
):
    job = submit(user, name="wide", nodes=2)
    submit(other_user, name="theirs", nodes=1)
    mine = {"job": job.pk, "attempt": f"{job.pk}.1", "name": "wide", "owner": "alice"}

    seen = holders_by_node(make_client(user))
    busy = sorted(name for name, (is_busy, _h) in seen.items() if is_busy)
    assert len(busy) == 3
    assert sorted(h["name"] if h["job"] else "?" for name, (_b, h) in seen.items() if h) == ["?", "wide", "wide"]
    assert [h for _b, h in seen.values() if h and h["job"]] == [mine, mine]
    assert [h for _b, h in seen.values() if h and not h["job"]] == [
        {"job": None, "attempt": None, "name": None, "owner": None}
    ]
    idle = [name for name, (is_busy, h) in seen.items() if not is_busy]
    assert len(idle) == 1 and seen[idle[0]] == (False, None)

    admin_view = holders_by_node(make_client(UserFactory(username="ops", groups=["root"])))
    assert sorted(h["owner"] for _b, h in admin_view.values() if h) == ["alice", "alice", "bob"]

    alices_node = next(name for name, (_b, h) in seen.items() if h and h["job"])
    detail = make_client(other_user).get(f"/api/v1/nodes/{alices_node}/").json()
    assert (detail["busy"], detail["holder"]) == (True, {"job": None, "attempt": None, "name": None, "owner": None})
    assert make_client(user).get(f"/api/v1/nodes/{alices_node}/").json()["holder"] == mine


def test_node_list_queries_do_not_grow_with_busy_nodes(cluster, submit, user, make_client):
    client = make_client(user)
    submit(user, name="one", nodes=1)
    client.get("/api/v1/nodes/")  # the token's first use is recorded once
    with CaptureQueriesContext(connection) as one:
        client.get("/api/v1/nodes/")
    submit(user, name="three", nodes=3)
    with CaptureQueriesContext(connection) as four:
        assert sum(n["busy"] for n in client.get("/api/v1/nodes/").json()["results"]) == 4
    assert len(four.captured_queries) == len(one.captured_queries)


def test_each_page_of_nodes_reads_and_shows_the_holders_of_its_own_nodes(
    cluster, submit, user, other_user, make_client
):
    job = submit(user, name="wide", nodes=2)
    submit(other_user, name="theirs", nodes=1)
    client = make_client(user)
    whole = holders_by_node(client)
    paged: dict[str, tuple[bool, dict | None]] = {}
    for number in (1, 2):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/api/v1/nodes/?page_size=2&page={number}")
        results = response.json()["results"]
        assert len(results) == 2
        paged |= {n["name"]: (n["busy"], n["holder"]) for n in results}
        held = [q["sql"] for q in queries.captured_queries if '"holds_node"' in q["sql"]]
        assert len(held) == 1 and " IN (" in held[0]  # only this page's nodes are looked up
    assert paged == whole
    assert sum(1 for _b, h in paged.values() if h and h["job"] == job.pk) == 2
    assert sum(1 for _b, h in paged.values() if h and h["job"] is None) == 1  # another's job stays anonymous
