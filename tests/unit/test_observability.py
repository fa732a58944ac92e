"""The application's metrics are published where their events happen, and Sentry starts only when asked.

Metrics are checked as CloudWatch receives them: the Embedded Metric Format lines a Lambda
function prints. Those tests run the real handlers in a fresh Python process with Lambda's
environment (Powertools configures itself from it at import, once per process), as the error
tracking ones must (Sentry is started once per process, at import).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agenthq.adapters.model import AnthropicModel, ModelRequest, ModelRequestRejected
from local.template import ROOT, load_template
from tests.support import metrics_added

NAMESPACE = "AgentHQ/unit-test"


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter with the layer on its path (as /opt/python is on Lambda)."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)]),
            "POWERTOOLS_SERVICE_NAME": "agenthq", "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
            "AWS_REGION": "us-east-1", "TABLE_NAME": "agenthq-unit"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=base | env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def emf_blobs(stdout: str) -> list[dict]:
    """The metric blobs a function printed (CloudWatch Logs turns each into metrics)."""
    blobs = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def published(stdout: str) -> dict[str, float]:
    """Metric name → total value, checking each blob's namespace and dimensions on the way."""
    totals: dict[str, float] = {}
    for blob in emf_blobs(stdout):
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE and directive["Dimensions"] == [["service"]]
        assert blob["service"] == "agenthq"
        for metric in directive["Metrics"]:
            value = blob[metric["Name"]]
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(value if isinstance(value, list) else [value])
    return totals


# --------------------------------------------------------------------------- the HTTP edge


HTTP_EDGE = """
    import json
    from agenthq.errors import QuotaExceeded, RateLimited
    from agenthq.http import create_app, lambda_handler
    from agenthq.settings import Settings
    from local.events import rest_proxy_event

    app = create_app("test", Settings(TABLE_NAME="unused"))

    @app.get("/quota")
    def quota():
        raise QuotaExceeded("Runs per day used up.", retry_after=60)

    @app.get("/throttled")
    def throttled():
        raise RateLimited("Too many failed logins; try again later.", retry_after=5)

    @app.get("/fine")
    def fine():
        return {"ok": True}

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "agents", 512, "req"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:agents"

    handler = lambda_handler(app)
    for path in ("/quota", "/throttled", "/fine", "/quota"):
        print("REQUEST", path, flush=True)
        print("STATUS", handler(rest_proxy_event("GET", path), Context())["statusCode"], flush=True)
"""


def _per_request(stdout: str) -> dict[str, list[str]]:
    requests: list[tuple[str, list[str]]] = []
    for line in stdout.splitlines():
        if line.startswith("REQUEST "):
            requests.append((line.split()[1], []))
        elif requests:
            requests[-1][1].append(line)
    return {f"{i}{path}": lines for i, (path, lines) in enumerate(requests)}


def test_every_429_a_function_answers_is_counted_and_published_with_its_invocation():
    result = run_python(HTTP_EDGE, POWERTOOLS_METRICS_DISABLED="false")
    assert result.returncode == 0, result.stderr
    requests = _per_request(result.stdout)
    assert published("\n".join(requests["0/quota"])) == {"RequestsQuotaExceeded": 1}
    assert published("\n".join(requests["1/throttled"])) == {"RequestsRateLimited": 1}
    assert emf_blobs("\n".join(requests["2/fine"])) == [], "a request that adds no metric publishes nothing"
    assert published("\n".join(requests["3/quota"])) == {"RequestsQuotaExceeded": 1}, "one invocation's, not a sum"
    assert "STATUS 429" in requests["0/quota"] and "STATUS 200" in requests["2/fine"]
    assert "No application metrics" not in result.stderr


def test_with_metrics_disabled_nothing_is_printed_and_nothing_piles_up():
    result = run_python(HTTP_EDGE + """
    from agenthq.observability import metrics
    print("LEFT", len(metrics.metric_set))
    """, POWERTOOLS_METRICS_DISABLED="true")
    assert result.returncode == 0, result.stderr
    assert emf_blobs(result.stdout) == [] and "LEFT 0" in result.stdout


# --------------------------------------------------------------------------- the broadcaster


BROADCASTER = """
    import sys
    sys.path.insert(0, "functions/broadcaster")
    import app
    from agenthq.live import broadcast
    from local.lambda_runtime import LambdaContext

    def deliver_record(services, record, pool, batch=None):  # the real one posts to @connections
        if record["eventID"].startswith("bad"):
            raise broadcast.DeliveryFailed("1 of 1 connections throttled")
        return 1

    broadcast.deliver_record = deliver_record
    broadcast.pool = lambda services: None
    app.get_services = lambda: None

    def record(event_id, seq):
        return {"eventID": event_id, "eventName": "INSERT", "eventSource": "aws:dynamodb",
                "dynamodb": {"SequenceNumber": str(seq), "NewImage": {}}}

    context = LambdaContext("broadcaster", "arn:aws:lambda:us-east-1:123456789012:function:broadcaster", 512,
                            "req", deadline=1e12)
    print("CALL some", flush=True)
    print("SOME", app.handler({"Records": [record("ok-1", 1), record("bad-2", 2), record("ok-3", 3)]}, context),
          flush=True)
    print("CALL all", flush=True)
    try:
        app.handler({"Records": [record("bad-4", 4), record("bad-5", 5)]}, context)
    except Exception as exc:
        print("ALL", type(exc).__name__, flush=True)
"""


def test_records_the_broadcaster_hands_back_are_counted():
    result = run_python(BROADCASTER, POWERTOOLS_METRICS_DISABLED="false")
    assert result.returncode == 0, result.stderr
    some, _, every = result.stdout.partition("CALL all")
    assert "'batchItemFailures': [{'itemIdentifier': '2'}]" in some
    assert published(some) == {"BroadcastFailures": 1}
    assert "ALL BatchProcessingError" in every, "a batch that fails whole fails the invocation"
    assert published(every) == {"BroadcastFailures": 2}


# --------------------------------------------------------------------------- the model API's throttles


def test_a_429_or_529_from_the_model_api_is_a_throttle_and_other_errors_are_not(server):
    model = AnthropicModel(api_key="k", base_url=server.base_url, timeout_seconds=5, sleep=lambda s: None)
    request = ModelRequest(model="claude-offline-test", system=None, tools=[], max_tokens=50,
                           messages=[{"role": "user", "content": "throttle-marker"}])
    try:
        with metrics_added() as added:
            server.faults.add({"status": 429, "retry_after": 0, "match": "throttle-marker"})
            server.faults.add({"status": 529, "match": "throttle-marker"})
            assert model.create_message(request).attempts == 3
            assert [(m.name, m.value) for m in added] == [("ModelThrottles", 1), ("ModelThrottles", 1)]
            server.faults.add({"status": 500, "match": "throttle-marker"})
            server.faults.add({"status": 400, "match": "throttle-marker"})
            with pytest.raises(ModelRequestRejected):
                model.create_message(request)
            assert len(added) == 2, "a 500 or a 400 is not a throttle"
    finally:
        model.close()


# --------------------------------------------------------------------------- error tracking (Sentry)


def _functions() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


COLD_START = """
    import importlib.util, sys
    for name in %r:
        spec = importlib.util.spec_from_file_location(f"app_{name}", f"functions/{name}/app.py")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, f"functions/{name}")
        spec.loader.exec_module(module)
    from agenthq import observability
    print("SENTRY", "sentry_sdk" in sys.modules, observability.error_tracking)
""" % (_functions(),)


@pytest.mark.parametrize("dsn", [None, "", "  "], ids=["unset", "empty (the template's default)", "blank"])
def test_without_a_dsn_no_function_imports_sentry_at_cold_start(dsn):
    result = run_python(COLD_START, **({} if dsn is None else {"SENTRY_DSN": dsn}))
    assert result.returncode == 0, result.stderr
    assert "SENTRY False False" in result.stdout


class FakeSentry(BaseHTTPRequestHandler):
    """Sentry's ingest endpoint: keeps the envelopes it is sent."""

    envelopes: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        FakeSentry.envelopes.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def sentry_server():
    FakeSentry.envelopes = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSentry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://public@127.0.0.1:{server.server_address[1]}/42"
    server.shutdown()
    server.server_close()


def test_with_a_dsn_errors_the_functions_log_reach_sentry(sentry_server):
    result = run_python("""
        import sys
        from agenthq import observability
        from sentry_sdk.integrations.aws_lambda import AwsLambdaIntegration
        import sentry_sdk
        client = sentry_sdk.get_client()
        print("STARTED", observability.error_tracking, "sentry_sdk" in sys.modules,
              client.get_integration(AwsLambdaIntegration) is not None or "lambda-integration-off-outside-lambda")
        try:
            1 / 0
        except ZeroDivisionError:
            observability.logger.exception("unhandled error")  # what the HTTP edge logs before its JSON 500
        sentry_sdk.flush(timeout=10)
    """, SENTRY_DSN=sentry_server, SENTRY_ENVIRONMENT="agenthq-unit")
    assert result.returncode == 0, result.stderr
    assert "STARTED True True" in result.stdout
    sent = b"\n".join(FakeSentry.envelopes)
    assert b"ZeroDivisionError" in sent and b"unhandled error" in sent
    event = next(json.loads(line) for line in sent.splitlines() if line.startswith(b"{") and b'"exception"' in line)
    assert event["release"] == "agenthq@" + __import__("agenthq").__version__
    assert event["environment"] == "agenthq-unit"


def test_the_template_passes_the_dsn_and_the_stack_to_every_function():
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["SENTRY_DSN"] == {"Ref": "SentryDsn"}
    assert variables["SENTRY_ENVIRONMENT"] == {"Ref": "AWS::StackName"}
    assert load_template()["Parameters"]["SentryDsn"]["Default"] == ""
