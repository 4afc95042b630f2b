"""schemathesis against the running server's /openapi.json: no 5xx, every response matches its
declared status, content type and schema (bounded examples per operation)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service_support import ROOT_KEY, Server, create_key

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def org_key(service_server: Server) -> str:
    """A key of test_org on the shared server."""
    return str(create_key(service_server, "test_org")["api_key"])


def test_api_conforms_to_its_schema(service_server: Server, org_key: str) -> None:
    """Generated requests for every operation, with the root key and an org key, never get a
    5xx or a response off its declared status, content type or schema."""
    api = schemathesis.openapi.from_url(f"{service_server.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=5,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            headers = {"X-CA-Root-Key": ROOT_KEY, "X-API-Key": org_key, **(case.headers or {})}
            case.call_and_validate(base_url=service_server.url, headers=headers, checks=CHECKS)

        check()
