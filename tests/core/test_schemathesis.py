"""Property-based run of the whole API against its OpenAPI schema (schemathesis, bounded).

Every operation of ``/api/schema/`` gets ``EXAMPLES`` generated requests — valid and invalid
parameters and bodies — sent through the WSGI application as a platform admin (so admin operations
run too). Each answer must be no 5xx, have a status code and content type the schema lists, conform
to the schema's response body, and, for a 4xx, be in the API's one error shape.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.accounts import services as account_services
from tests.factories import UserFactory

EXAMPLES = 4
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
application = get_wsgi_application()


@pytest.fixture
def admin_token(db: None) -> str:
    account_services.ensure_admin_groups()
    admin = UserFactory(username="fuzz-admin", groups=["root"])
    return account_services.token_create(actor=admin, name="fuzz", scope="all").raw


@pytest.fixture(autouse=True)
def _keep_the_tests_connection():
    """As Django's test client does: a request must not close the test's database connection."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _forget_login_throttle():
    """The token exchange is rate-limited per address in the shared cache: leave no count behind."""
    yield
    cache.delete("throttle_login_127.0.0.1")


def assert_error_shape(response: Any) -> None:
    if not 400 <= response.status_code < 500 or response.status_code == 405:
        return
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["fields"], dict), body


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_answers_within_its_schema(case, admin_token):
    headers = {"Authorization": f"Bearer {admin_token}"}
    response = case.call(app=application, base_url="http://testserver", headers=headers)
    case.validate_response(response, checks=CHECKS)
    assert_error_shape(response)
