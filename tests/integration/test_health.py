"""GET /v1/health through the real handler against DynamoDB Local and moto."""

from __future__ import annotations

import json

import agenthq
from agenthq.services import Services, get_services, set_services
from local.events import rest_proxy_event
from local.lambda_runtime import in_process
from local.template import load_template


def invoke_health(cloud):
    response = cloud.runtime.invoke("HealthFunction", rest_proxy_event("GET", "/health"))
    return response["statusCode"], json.loads(response["body"])


def test_health_is_ok_when_dynamodb_and_stepfunctions_answer(cloud):
    status, body = invoke_health(cloud)
    assert status == 200
    assert body["status"] == "ok"
    assert body["checks"] == {"dynamodb": "ok", "stepfunctions": "ok"}


def test_health_reports_the_release_the_template_gives_every_function(cloud):
    """The function's APP_VERSION from template.yaml, equal to the code's (tests/unit/test_version.py)."""
    _, body = invoke_health(cloud)
    assert body["version"] == load_template()["Globals"]["Function"]["Environment"]["Variables"]["APP_VERSION"]
    assert body["version"] == agenthq.__version__


def test_health_reports_each_failing_dependency(cloud):
    settings = get_services().settings
    broken = settings.model_copy(update={"table_name": "no-such-table",
                                         "state_machine_arn": settings.state_machine_arn + "-gone"})
    set_services(Services(broken))
    try:
        with in_process():  # the broken services exist in this process only
            status, body = invoke_health(cloud)
    finally:
        set_services(Services(settings))  # and the models are bound to the real table again
    assert status == 503
    assert body["status"] == "degraded"
    assert body["checks"]["dynamodb"].startswith("error")
    assert body["checks"]["stepfunctions"].startswith("error")
