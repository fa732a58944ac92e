"""A warm GET through the full handler, the authorizer, and cold-start imports.

- warm GET /workspaces/{wid} (proxy event in, response out: FastAPI + Mangum +
  tenant scope + one GetItem) ÷ one raw DynamoDB GetItem round trip;
- the authorizer per request, with an access JWT and with an API key ÷ GetItem;
- the import (cold-start) time of each function module ÷ `python -c pass`.
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404  # fresh interpreters for the cold-start figures
import sys

import boto3

from bench.common import ROOT, fresh_process_cpu_seconds, median_seconds, ms, print_table
from local.events import rest_proxy_event


def raw_getitem(cloud) -> callable:
    client = boto3.client("dynamodb", region_name="us-east-1")
    table = cloud.config.stack.table_name
    return lambda: client.get_item(TableName=table, Key={"pk": {"S": "HEALTH"}, "sk": {"S": "HEALTH"}})


def warm_requests(cloud, n: int = 300) -> list[tuple[str, float, str]]:
    from tests.support import client_for, signup, with_api_key

    with client_for(cloud) as api:
        tenant = with_api_key(signup(api, tag="bench", tier="pro"))
    getitem = median_seconds(raw_getitem(cloud), n, warmup=max(n, 300))  # warm the JVM first

    runtime = cloud.runtime
    get_event = rest_proxy_event("GET", f"/workspaces/{tenant.workspace_id}", resource="/workspaces/{wid}",
                                 path_parameters={"wid": tenant.workspace_id})
    principal = runtime.invoke("AuthorizerFunction", {"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:a/v1/GET/x",
                                                      **rest_proxy_event("GET", "/x", headers=tenant.headers)})
    get_event["requestContext"]["authorizer"] = {**principal["context"], "principalId": principal["principalId"]}

    def get_workspace():
        response = runtime.invoke("WorkspacesFunction", get_event)
        assert response["statusCode"] == 200, response  # nosec B101  # a benchmark's sanity check

    def authorize(headers):
        event = {"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:a/v1/GET/x",
                 **rest_proxy_event("GET", "/x", headers=headers)}
        return lambda: runtime.invoke("AuthorizerFunction", event)

    handler = median_seconds(get_workspace, n, warmup=20)
    jwt = median_seconds(authorize(tenant.headers), n, warmup=20)
    key = median_seconds(authorize(tenant.key_headers), n, warmup=20)
    return [
        ("raw DynamoDB GetItem (baseline)", 1.0, ms(getitem)),
        ("warm GET /workspaces/{wid}, full handler", handler / getitem, ms(handler)),
        ("authorizer, access JWT", jwt / getitem, ms(jwt)),
        ("authorizer, API key", key / getitem, ms(key)),
    ]


#: Prints, in a fresh process, the third-party modules importing ``module`` loaded, in the order they loaded.
_DEPENDENCIES = """
import json, sys, sysconfig
paths = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
before = set(sys.modules)
import {module}
print(json.dumps([name for name, m in list(sys.modules.items()) if name not in before
                  and (getattr(m, "__file__", None) or "").startswith(paths)]))
"""

#: Imports the given modules, in order (a module that cannot be imported alone is skipped).
_FLOOR = """
import importlib
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""


def cold_imports(cloud, n: int = 5) -> list[tuple[str, float, str]]:
    """Each function's cold import ÷ the import floor of its own third-party
    dependencies: a fresh process that imports exactly the third-party modules
    the function's import loads, and nothing of ours. What is above 1× is our
    code's own import time."""
    env = dict(cloud.environment)
    baseline = fresh_process_cpu_seconds({"empty": "pass"}, n)["empty"]
    rows = [("python -c pass (for scale)", 1.0, f"{ms(baseline)} CPU")]
    for spec in sorted(cloud.runtime.specs.values(), key=lambda s: s.logical_id):
        module, _ = spec.handler.rsplit(".", 1)
        path = f"import sys; sys.path[:0] = [{str(ROOT / 'layers' / 'common')!r}, {str(spec.code_uri)!r}]\n"
        found = subprocess.run([sys.executable, "-c", path + _DEPENDENCIES.format(module=module)],  # nosec B603  # fixed argv
                               check=True, capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT)
        dependencies = json.loads(found.stdout.strip().splitlines()[-1])
        cpu = fresh_process_cpu_seconds({"floor": _FLOOR.format(modules=dependencies),
                                         "function": path + f"import {module}"}, n, env)
        rows.append((f"{spec.code_uri.name}/{module}.py ÷ its dependencies' floor", cpu["function"] / cpu["floor"],
                     f"{ms(cpu['function'])} vs {ms(cpu['floor'])} CPU for {len(dependencies)} third-party "
                     f"modules ({cpu['function'] / baseline:.0f}x python -c pass)"))
    return rows


def run(cloud, n: int = 300, imports: int = 5) -> dict[str, list[tuple[str, float, str]]]:
    results = {"Warm requests (median ÷ one raw GetItem)": warm_requests(cloud, n)}
    if imports:
        results["Cold start: module import ÷ the import floor of its own dependencies (medians)"] = \
            cold_imports(cloud, imports)
    for title, rows in results.items():
        print_table(title, rows)
    return results
