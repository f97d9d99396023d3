"""Bad input is a 400 in the API's error shape, never a 500: the fuzzer's six distinct crashes.

A JSON body that is not an object, integers beyond the database's range, a NUL in a metric name,
and JSON nested 1,000 levels deep (also on the unauthenticated token endpoint).
"""

from __future__ import annotations

import json

import pytest

from apps.core.api.parsers import JSONObjectParser
from apps.experiments.models import Attempt, Chain, MetricPoint
from tests.conftest import Cluster

RUNTIME = [
    ("get", "/api/v1/job/status/"),
    ("post", "/api/v1/job/whole-life-state/"),
    ("post", "/api/v1/job/checkpoint/"),
    ("post", "/api/v1/job/go-suspend/"),
    ("post", "/api/v1/job/watchdog/"),
    ("post", "/api/v1/job/metrics/"),
]
DEEP = "[" * 1000 + "]" * 1000


@pytest.fixture
def small_cluster(db) -> Cluster:
    """One node; not transactional (nothing here needs a scheduling pass: the attempt stays queued)."""
    return Cluster(1, {10: 1})


@pytest.fixture
def attempt(small_cluster, submit, user) -> Attempt:
    chain = submit(user, name="fuzzed")
    return Attempt.objects.get(pk=Chain.objects.get(pk=chain.pk).latest_attempt_id)


def assert_error_shape(response, code: str = "invalid") -> dict:
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert sorted(error) == ["code", "fields", "message"]
    assert error["code"] == code
    assert error["message"]
    return error


@pytest.mark.parametrize(("method", "path"), RUNTIME)
@pytest.mark.parametrize("body", ["[1, 2]", "null"])
def test_a_json_body_that_is_not_an_object_is_a_400_on_every_runtime_endpoint(api, attempt, method, path, body):
    response = api.generic(method.upper(), path, data=body, content_type="application/json")
    error = assert_error_shape(response, code="parse_error")
    assert error["message"].startswith("The request body must be a JSON object")
    attempt.refresh_from_db()
    assert (attempt.whole_life_state, attempt.watchdog_seconds, attempt.suspend_state) == (0, None, 0)
    assert MetricPoint.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "kind"),
    [("[1, 2]", "list"), ('"attempt"', "string"), ("7", "number"), ("null", "null"), ("true", "boolean")],
)
def test_the_parser_names_what_the_body_was_instead_of_an_object(rf, body, kind):
    from io import BytesIO

    from rest_framework.exceptions import ParseError

    with pytest.raises(ParseError, match=f"must be a JSON object \\({{...}}\\), not a {kind}"):
        JSONObjectParser().parse(BytesIO(body.encode()), "application/json", {})


@pytest.mark.parametrize(("method", "path"), RUNTIME)
def test_json_nested_a_thousand_levels_is_a_400_on_every_runtime_endpoint(api, attempt, method, path):
    body = json.dumps({"attempt": attempt.pk})[:-1] + f', "deep": {DEEP}}}'
    response = api.generic(method.upper(), path, data=body, content_type="application/json")
    error = assert_error_shape(response, code="parse_error")
    assert "nested deeper than 32 levels" in error["message"]


def test_json_nested_a_thousand_levels_is_a_400_on_the_token_endpoint(client, user):
    body = '{"username": "alice", "password": "x", "name": ' + DEEP + "}"
    response = client.post("/api/v1/auth/token/", data=body, content_type="application/json")
    assert_error_shape(response, code="parse_error")
    moderately = '{"username": "alice", "password": "x", "name": ' + "[" * 40 + "]" * 40 + "}"
    assert_error_shape(
        client.post("/api/v1/auth/token/", data=moderately, content_type="application/json"), "parse_error"
    )


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/job/whole-life-state/", {"whole_life_state": 2**63}, "whole_life_state"),
        ("/api/v1/job/whole-life-state/", {"whole_life_state": -(2**63) - 1}, "whole_life_state"),
        ("/api/v1/job/watchdog/", {"seconds": 2**40}, "seconds"),
        ("/api/v1/job/metrics/", {"step": 2**63, "values": {"loss": 1.0}}, "step"),
        ("/api/v1/job/metrics/", {"step": 1, "values": {"loss": 10**400}}, "values.loss"),
        ("/api/v1/job/metrics/", {"step": 1, "values": {"lo\x00ss": 1.0}}, "values"),
        ("/api/v1/job/metrics/", {"step": 1, "values": {"loss\n": 1.0}}, "values"),
    ],
)
def test_values_the_database_cannot_store_are_a_400_naming_the_field(api, attempt, path, body, field):
    response = api.post(f"{path}?attempt={attempt.pk}", data=json.dumps(body), content_type="application/json")
    error = assert_error_shape(response)
    assert list(error["fields"]) == [field]
    attempt.refresh_from_db()
    assert (attempt.whole_life_state, attempt.watchdog_seconds) == (0, None)
    assert MetricPoint.objects.count() == 0


def test_the_largest_values_the_database_can_store_are_accepted(api, attempt):
    url = f"?attempt={attempt.pk}"
    assert (
        api.post(f"/api/v1/job/whole-life-state/{url}", {"whole_life_state": 2**63 - 1}, format="json").status_code
        == 200
    )
    assert (
        api.post(
            f"/api/v1/job/metrics/{url}", {"step": 2**63 - 1, "values": {"loss": 1e308}}, format="json"
        ).status_code
        == 201
    )
    attempt.refresh_from_db()
    assert attempt.whole_life_state == 2**63 - 1
    assert list(MetricPoint.objects.values_list("step", "name", "value")) == [(2**63 - 1, "loss", 1e308)]


@pytest.mark.parametrize(
    ("field", "value"),
    [("whole_life_state", 2**64), ("watchdog_seconds", 2**40), ("watchdog_seconds", -5), ("nodes", 2**63)],
)
def test_submitting_integers_beyond_the_database_range_is_a_400(api, small_cluster, workspace, field, value):
    body = {"name": "big", "workspace": str(workspace), "entrypoint": "train.py", "group": "training", field: value}
    response = api.post("/api/v1/experiments/", data=json.dumps(body), content_type="application/json")
    error = assert_error_shape(response)
    assert list(error["fields"]) == [field]
    assert Chain.objects.count() == 0
