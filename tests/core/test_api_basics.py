"""The API's shared behaviour: one error shape, the OpenAPI schema and its docs page."""

from __future__ import annotations

import pytest
import yaml

from apps.core.logging import scrub


@pytest.mark.django_db
def test_schema_lists_every_endpoint(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    paths = set(schema["paths"])
    for expected in ["/api/v1/me/", "/api/v1/tokens/", "/api/v1/nodes/", "/api/v1/admin/quotas/", "/api/v1/quota/"]:
        assert expected in paths
    from tests.core.test_permissions import _api_routes

    assert len(paths) == len(_api_routes())
    assert schema["components"]["securitySchemes"]


@pytest.mark.django_db
def test_schema_says_a_tokens_creator_may_be_null(client, api, user):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    assert schema["components"]["schemas"]["Token"]["properties"]["created_by"]["nullable"] is True
    # a token its owner made has no separate issuer: the schema above allows what the API answers
    tokens = api.get("/api/v1/tokens/").json()["results"]
    assert [t["created_by"] for t in tokens] == [None]


@pytest.mark.django_db
def test_schema_lists_the_error_statuses_of_every_operation_in_the_error_shape(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
    operations = [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]
    assert len(operations) > 40
    for path, method, op in operations:
        responses = op["responses"]
        assert responses["400"]["content"] == error, (path, method)
        if op.get("security") != [{}]:
            assert {"401", "403"} <= set(responses), (path, method)
        if "{" in path:
            assert "404" in responses, (path, method)
    token = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]
    assert sorted(token) == ["201", "400", "409", "429"]


@pytest.mark.django_db
@pytest.mark.usefixtures("plain_static_storage")  # the page links static files (the sidecar's)
def test_docs_page_renders(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_api_docs_load_every_asset_from_this_server(client, settings, page):
    """The docs work without internet: no CDN, every script and style is one of our static files."""
    import re

    from django.contrib.staticfiles import finders

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    response = client.get(page)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>" not in body  # nothing inline (the Content-Security-Policy allows none)
    assets = re.findall(r'(?:src|href)="([^"]+)"', body)
    assert assets, body
    assert [a for a in assets if "//" in a] == []
    static = [a for a in assets if a.startswith(settings.STATIC_URL)]
    assert len(static) >= 1
    for asset in static:
        assert finders.find(asset.removeprefix(settings.STATIC_URL)), f"{asset} is not a static file here"
    if page == "/api/docs/":
        script = client.get("/api/docs/?script")
        assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


@pytest.mark.django_db
def test_validation_errors_have_one_shape_with_fields(api):
    response = api.post("/api/v1/tokens/", {"scope": "root"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"name", "scope"}
    assert error["message"]


@pytest.mark.django_db
def test_not_found_has_the_shape(api):
    response = api.get("/api/v1/nodes/ghost/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_logs_scrub_tokens():
    line = (
        "GET /operating/task/create?token=rota_abcdefgh_SECRETSECRETSECRET1234&x=1 "
        "Bearer rota_abcdefgh_SECRETSECRET99999"
    )
    cleaned = scrub(line)
    assert "SECRET" not in cleaned
    assert "token=[scrubbed]" in cleaned


@pytest.mark.django_db
@pytest.mark.usefixtures("plain_static_storage")
def test_an_api_url_that_matches_no_route_is_a_json_404_and_a_page_one_stays_html(api):
    response = api.get("/api/v1/tokens/not-a-number/")
    assert (response.status_code, response["Content-Type"]) == (404, "application/json")
    assert response.json() == {
        "error": {"code": "not_found", "message": "No such API endpoint or object.", "fields": {}}
    }
    page = api.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_an_admin_cannot_create_a_user_name_with_control_characters(admin_api):
    from apps.accounts.models import User

    before = User.objects.count()
    response = admin_api.post("/api/v1/admin/users/", {"username": "\x19ä"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["username"]
    assert User.objects.count() == before
