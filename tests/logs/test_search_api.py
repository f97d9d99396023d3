"""The log search endpoint: linear-time patterns, a time budget, and errors in the API's shape."""

from __future__ import annotations

import pytest

from apps.logs.store import get_log_store


@pytest.fixture
def store(settings, tmp_path):
    settings.ROTA_LOG_ROOT = tmp_path / "logs"
    get_log_store.cache_clear()
    yield get_log_store()
    get_log_store.cache_clear()


@pytest.fixture
def job(cluster, submit, user, store):
    chain = submit(user, name="searched", nodes=2)
    chain.refresh_from_db()
    store.append_lines(str(chain.pk), chain.latest_attempt_id, 0, ["a" * 40, "loss 0.5"])
    store.append_lines(str(chain.pk), chain.latest_attempt_id, 1, ["a" * 40 + "b"])
    return chain


def search(api, chain, **params):
    return api.get(f"/api/v1/experiments/{chain.pk}/logs/search/", params)


def test_an_alternation_under_a_star_answers_at_once(api, job):
    response = search(api, job, q="(a|a)*b", regex="1")
    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"0": 0, "1": 1}
    assert [(m["rank"], m["line"]) for m in body["matches"]] == [(1, 1)]


def test_a_pattern_re2_cannot_run_is_a_400_in_the_error_shape(api, job):
    response = search(api, job, q="(?<=a)b", regex="1")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"].startswith("invalid regular expression: invalid perl operator")
    assert list(error["fields"]) == ["q"]


def test_a_search_past_its_time_budget_is_a_400_saying_how_to_narrow_it(api, job, settings):
    settings.ROTA_LAUNCHER = {**settings.ROTA_LAUNCHER, "LOG_SEARCH_SECONDS": 0.0}
    response = search(api, job, q="loss")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "search_timeout"
    assert "use a more specific pattern" in error["message"]
    assert error["fields"] == {"q": [error["message"]]}
