"""a4: schemathesis fuzzes the OpenAPI spec; the service must never answer 5xx and must match its schema.

Schema-driven fuzzing never sends NaN/Infinity (not JSON, but accepted by Python's parser): those
bodies are fuzzed field by field in test_a4_service.py (test_non_finite_numbers_are_422_in_strict_json).
"""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from experiments.foundations.a4_mock_inference_service.service import ServiceConfig, create_app  # noqa: E402

# No model latency, no rate limit, healthy backend: any 5xx would be a bug in the service itself.
APP = create_app(ServiceConfig(decode_ms_per_token=0, prefill_ms_per_token=0, rate_limit_rps=None))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
          database=None)
def test_fuzz_openapi_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, (case.body, response.text)
    case.validate_response(response)
