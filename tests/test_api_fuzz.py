"""Property-based fuzzing of the whole REST API from its own OpenAPI document
(schemathesis), with a valid admin API key, in both modes: no answer is a server
error, every answer matches the schema documented for it. How long an answer takes is
the benchmarks' business: a wall-clock bound here failed CI once (a plain GET took 8 s
on a loaded machine, and 0.1 s when Hypothesis replayed it)."""

from __future__ import annotations

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
            response = case.call(headers=tenant.auth)
            case.validate_response(
                response,
                checks=(not_a_server_error, response_schema_conformance, status_code_conformance),
            )

        fuzz()
        fuzzed += 1
    assert fuzzed > 40
    # Strings the fuzzer drew from the schema's own words (a tag, "configuration",
    # became a password) are no secrets: registered, they would fail every later log
    # line that uses the word. (Those drawn from the source are forgotten for every
    # test by secret_scan.)
    words = orjson.dumps(app.openapi()).decode()
    REGISTRY.discard(v for v in REGISTRY.registered() - known if v in words)
