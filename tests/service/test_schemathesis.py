"""Schemathesis over the whole OpenAPI schema, valid and invalid inputs, with an admin
key: no 5xx, on either store (PostgreSQL is the stricter one: NUL characters, unpaired
surrogates, floating-point underflow, integers past 64 bits)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from pyrometer.api.app import create_app
from pyrometer.service.keys import Scope, create_key
from pyrometer.service.runtime import Service


@pytest.fixture
def api_schema(service: Service) -> schemathesis.BaseSchema:
    app = create_app(service, background=False)
    app.state.test_key = create_key(service, Scope.ADMIN)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    key = case.operation.schema.app.state.test_key
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=[not_a_server_error])
