"""Every sample event in events/ runs through its handler (as `sam local invoke` would)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.lambda_runtime import FunctionError
from local.template import ROOT, LocalStack, Resolver, functions, load_template

EVENTS = sorted((ROOT / "events").glob("*/*.json"))
TEMPLATE = load_template()
BY_DIR = {spec.code_uri.name: spec.logical_id for spec in functions(TEMPLATE, Resolver(TEMPLATE, LocalStack())).values()}


def test_every_function_has_a_sample_event():
    with_events = {path.parent.name for path in EVENTS}
    assert set(BY_DIR) <= with_events, f"functions without a sample event: {set(BY_DIR) - with_events}"


@pytest.mark.parametrize("path", EVENTS, ids=[f"{p.parent.name}/{p.name}" for p in EVENTS])
def test_sample_event_runs_through_its_handler(cloud, path: Path):
    assert path.parent.name in BY_DIR, f"{path}: no function with CodeUri functions/{path.parent.name}"
    event = json.loads(path.read_text())
    if event.get("type") == "REQUEST":  # an authorizer event: a policy, or exactly "Unauthorized" (→ 401)
        try:
            result = cloud.runtime.invoke(BY_DIR[path.parent.name], event)
        except FunctionError as err:
            assert err.message == "Unauthorized", err
        else:
            assert {"principalId", "policyDocument", "context"} <= set(result)
        return
    if "step" in event:  # a Step Functions task: its next step, or the documented refusal of an unknown run
        try:
            result = cloud.runtime.invoke(BY_DIR[path.parent.name], event)
        except FunctionError as err:
            assert err.error_type in ("RunStepRejected", "OffboardingStepRejected"), err
        else:  # a run's step: what comes next in which turn; an offboarding's: its next phase, where to go on
            assert set(result) in ({"next", "turn"}, {"phase", "cursor"}), result
        return
    result = cloud.runtime.invoke(BY_DIR[path.parent.name], event)
    if "httpMethod" in event:  # an API Gateway proxy event: a well-formed, non-5xx answer
        assert result["statusCode"] < 500, result
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        if headers.get("content-type", "").startswith("text/csv"):  # a download (the usage export)
            assert headers["content-disposition"].startswith("attachment;"), headers
            return
        body = json.loads(result["body"])
        if result["statusCode"] >= 400:
            assert set(body["error"]) >= {"code", "message", "request_id"}
