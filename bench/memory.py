"""Each function's peak memory (RSS) beside the memory template.yaml gives it.

Lambda bills memory × wall time, and a function waiting on the model pays for its memory while it waits:
memory is sized by measurement (docs/benchmarks.md, "Memory"). Two figures per function:

- **in its workers**: the local cloud runs each function in execution environments of its own (worker
  processes, local/lambda_runtime.py); after a workload that invokes them over HTTP and the state machine
  — signups, logins, agents, runs with tool calls, their events and usage, a WebSocket ticket — the
  peak RSS (``VmHWM``) of the function's busiest worker. This is an upper bound: workers are forked from a
  server that imported every function's third-party packages (the model SDK included), as no Lambda
  execution environment of an HTTP function does.
- **fresh import**: a new interpreter that imports only the function's module (its ``VmHWM``): the floor
  of a cold start, for the functions the workload does not reach.

The larger of the two is the function's peak; its ``MemorySize`` must be at least 1.5 × that
(:data:`HEADROOM`). Sizes are rounded to what the figures and the work justify (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import subprocess  # nosec B404  # fresh interpreters importing each function
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT, print_rows

HEADROOM = 1.5  # a function's MemorySize ≥ this × its peak RSS
MB = 1024 * 1024


@dataclass
class FunctionMemory:
    logical_id: str
    configured_mb: int
    architecture: str
    worker_peak_mb: float | None  # None: the workload did not invoke it
    import_peak_mb: float

    @property
    def peak_mb(self) -> float:
        return max(self.worker_peak_mb or 0.0, self.import_peak_mb)

    @property
    def headroom(self) -> float:
        return self.configured_mb / self.peak_mb


def worker_peak_mb(pid: int) -> float | None:
    """The peak resident set size of a process (``VmHWM``), in MB; None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MB
    return None


def workers_peak_mb(cloud: Any, logical_id: str) -> float | None:
    environments = cloud.runtime._environments[logical_id]
    peaks = [worker_peak_mb(worker.pid) for worker in list(environments.idle) if worker.pid]
    measured = [p for p in peaks if p is not None]
    return max(measured) if measured else None


def import_peak_mb(cloud: Any, spec: Any) -> float:
    # VmHWM, not ru_maxrss: getrusage's peak survives execve, so a child would report its parent's.
    code = ("import sys\n"
            f"sys.path[:0] = [{str(ROOT / 'layers' / 'common')!r}, {str(spec.code_uri)!r}]\n"
            "import app\n"
            "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))")
    env = {**os.environ, **spec.environment, **cloud.environment, "POWERTOOLS_TRACE_DISABLED": "true"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,  # nosec B603  # fixed argv, no shell
                            env=env, cwd=ROOT, timeout=120)
    return int(result.stdout.strip().splitlines()[-1]) * 1024 / MB


def workload(cloud: Any, runs: int = 3) -> None:
    """Invoke the functions as users do: over the REST API, and runs through the state machine — with a
    tool of an MCP server (the run worker imports the ``mcp`` SDK for it), a session's turns, a pending
    approval, a schedule and a webhook."""
    from local.mcp_demo import McpDemo
    from tests.support import PASSWORD, client_for, create_agent, launch, signup, wait_for

    demo = McpDemo().start()
    try:
        with client_for(cloud) as api:
            tenant = signup(api, tag="bench-memory", tier="pro")
            api.post("/auth/login", json={"email": tenant.email, "password": PASSWORD})
            server = tenant.post("/mcp-servers", json={"name": "demo", "url": demo.url})
            assert server.status_code == 201, server.text  # nosec B101  # a benchmark's sanity check
            tools = ["calculator", "current_time", "mcp__demo__echo"]
            agent = create_agent(tenant, "bench-memory", "sre", tools=tools,
                                 tool_policies={"mcp__demo__echo": "allow", "calculator": "ask"})
            task = ("Check the disks.\n/tool current_time {}\n/tool mcp__demo__echo {\"text\": \"disks\"}\n"
                    '/tools [{"name": "current_time", "input": {}}, {"name": "mcp__demo__echo", "input": {"text": "ok"}}]')
            launched = [launch(tenant, agent["id"], f"{task}\nRun {i}.").json()["id"] for i in range(runs)]
            session = tenant.post(f"/agents/{agent['id']}/sessions", json={"title": "bench"}).json()
            for text in ("First turn.\n/tool mcp__demo__echo {\"text\": \"one\"}", "Second turn."):
                launched.append(tenant.post(f"/sessions/{session['id']}/messages", json={"input": text}).json()["id"])
            for run_id in launched:
                wait_for(tenant, run_id, timeout=240)
                tenant.get(f"/runs/{run_id}/events")
            asking = launch(tenant, agent["id"], '/tool calculator {"expression": "6*7"}').json()["id"]
            tenant.post(f"/agents/{agent['id']}/schedules",
                        json={"cron": "0 6 * * *", "timezone": "Europe/Berlin", "input": "Morning."})
            tenant.post("/webhooks", json={"url": demo.url, "events": ["run.succeeded"]})
            tenant.get(f"/sessions/{session['id']}/messages")
            tenant.get("/approvals", params={"run_id": asking})
            tenant.get("/mcp-servers")
            tenant.get("/runs")
            tenant.get("/usage", params={"period": "month"})
            tenant.get("")
            api.post("/ws-tickets", headers=tenant.headers)
            api.get("/health")
    finally:
        demo.stop()


def measure(cloud: Any, runs: int = 3) -> list[FunctionMemory]:
    if cloud.runtime.workers is None:
        raise RuntimeError("the memory benchmark needs the local cloud's worker processes (not --in-process)")
    cloud.runtime.retire_environments()  # the peaks of environments that ran this workload, not earlier ones
    workload(cloud, runs)
    figures = []
    for logical_id, spec in sorted(cloud.runtime.specs.items()):
        figures.append(FunctionMemory(logical_id, spec.memory, spec.architecture,
                                      workers_peak_mb(cloud, logical_id), import_peak_mb(cloud, spec)))
    return figures


def run(cloud: Any, runs: int = 3) -> dict[str, dict[str, float]]:
    figures = measure(cloud, runs)
    rows = []
    for f in figures:
        worker = f"{f.worker_peak_mb:6.0f} MB in its workers" if f.worker_peak_mb else "   (not invoked)        "
        verdict = "ok" if f.headroom >= HEADROOM else f"BELOW {HEADROOM}x"
        rows.append((f.logical_id, f"{f.configured_mb} MB",
                     f"{f.architecture}; peak {f.peak_mb:4.0f} MB ({worker}, {f.import_peak_mb:4.0f} MB fresh import)"
                     f"; {f.headroom:.1f}x its peak — {verdict}"))
    print_rows(f"Memory: each function's MemorySize (template.yaml) and its peak RSS (bound: ≥ {HEADROOM}x the peak)",
               rows)
    print("  Worker peaks are upper bounds: the workers are forked from a server holding every function's packages.")
    return {f.logical_id: {"configured_mb": f.configured_mb, "peak_mb": f.peak_mb,
                           "worker_peak_mb": f.worker_peak_mb or 0.0, "import_peak_mb": f.import_peak_mb}
            for f in figures}
