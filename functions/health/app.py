"""GET /v1/health: is AgentHQ able to serve? No authentication."""

from fastapi.responses import JSONResponse

from agenthq.health import HealthReport, check_health
from agenthq.http import create_app, lambda_handler
from agenthq.services import get_services

app = create_app("health")


@app.get("/health", response_model=HealthReport,
         responses={503: {"model": HealthReport, "description": "Degraded: a check is not `ok`."}})
def get_health() -> JSONResponse:
    report = check_health(get_services())
    return JSONResponse(report.model_dump(), status_code=200 if report.ok else 503)


handler = lambda_handler(app)
