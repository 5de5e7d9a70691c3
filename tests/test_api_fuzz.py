"""Property-based fuzzing of the whole REST API from its own OpenAPI document
(schemathesis), with a valid admin API key, in both modes: no answer is a server
error, every answer matches the schema documented for it, none takes over 5 s."""

from __future__ import annotations

import time
from typing import Any

import orjson
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import TenantHandle
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.web.app import create_app
from secret_scan import REGISTRY

#: Examples per operation: enough to meet each class of bad input, few enough that
#: the whole API is fuzzed in about a minute on two cores.
EXAMPLES = 10
SLOW_SECONDS = 5.0
#: Signed by their senders, not by API keys: the webhook robustness tests fuzz them.
SIGNED = ("/v1/wh/", "/v1/slack/")


def test_the_api_never_fails_and_keeps_its_schema(runtime: Runtime, tenant: TenantHandle) -> None:
    app = create_app(runtime)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    known = REGISTRY.registered()
    fuzzed = 0
    for operation in operations:
        if operation.path.startswith(SIGNED):
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: Any) -> None:
            started = time.monotonic()
            response = case.call(headers=tenant.auth)
            took = time.monotonic() - started
            case.validate_response(
                response,
                checks=(not_a_server_error, response_schema_conformance, status_code_conformance),
            )
            assert took < SLOW_SECONDS, f"{case.method} {case.path} took {took:.1f} s"

        fuzz()
        fuzzed += 1
    assert fuzzed > 40
    # Strings the fuzzer drew from the schema's own words (a tag, "configuration",
    # became a password) are no secrets: registered, they would fail every later log
    # line that uses the word.
    words = orjson.dumps(app.openapi()).decode()
    REGISTRY.discard(v for v in REGISTRY.registered() - known if v in words)
