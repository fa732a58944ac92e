"""API Gateway REST proxy events, as API Gateway builds them (payload format 1.0)."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import uuid
from typing import Any

from local.template import ACCOUNT_ID, REST_API_ID

API_ID = REST_API_ID


def rest_proxy_event(
    method: str,
    path: str,
    *,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query: str | dict[str, str] = "",
    headers: list[tuple[str, str]] | dict[str, str] | None = None,
    body: bytes | str | dict | list | None = None,
    stage: str = "v1",
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``path`` is the resource path without the stage (``/workspaces/abc``)."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    headers = list(headers or [])
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    if isinstance(query, dict):
        query = urllib.parse.urlencode(query)
    qs_multi: dict[str, list[str]] = {}
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        qs_multi.setdefault(name, []).append(value)
    text: str | None = None
    is_b64 = False
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_b64 = base64.b64encode(body).decode("ascii"), True
    now = time.time()
    request_id = request_id or str(uuid.uuid4())
    event: dict[str, Any] = {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v[-1] for k, v in qs_multi.items()} or None,
        "multiValueQueryStringParameters": qs_multi or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "resourcePath": resource or path,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "protocol": "HTTP/1.1",
            "domainName": "127.0.0.1",
            "identity": {"sourceIp": source_ip, "userAgent": single.get("User-Agent") or single.get("user-agent")},
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return event
