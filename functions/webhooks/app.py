"""Webhooks: a workspace's endpoints, their test pings, delivery logs and redeliveries."""

from fastapi import Response

from agenthq.errors import Conflict, PlanLimit
from agenthq.http import Cursor, Limit, WorkspacePrincipal, create_app, documented, lambda_handler
from agenthq.pagination import Page, limit_param
from agenthq.responses import ListOf
from agenthq.services import get_services
from agenthq.webhooks import api
from agenthq.webhooks.api import WebhookCreate
from agenthq.webhooks.responses import NewWebhook, Webhook, WebhookDelivery

app = create_app("webhooks")


@app.post("/workspaces/{wid}/webhooks", status_code=201, response_model=NewWebhook, responses=documented(PlanLimit))
def create_webhook(body: WebhookCreate, principal: WorkspacePrincipal) -> dict:
    return api.create_webhook(get_services(), principal, body)


@app.get("/workspaces/{wid}/webhooks", response_model=ListOf[Webhook])
def list_webhooks(principal: WorkspacePrincipal, cursor: str | None = Cursor, limit: int | None = Limit) -> Page:
    return api.list_webhooks(principal, cursor, limit_param(limit))


@app.delete("/workspaces/{wid}/webhooks/{webhook_id}", status_code=204)
def delete_webhook(principal: WorkspacePrincipal, webhook_id: str) -> Response:
    api.delete_webhook(principal, webhook_id)
    return Response(status_code=204)


@app.post("/workspaces/{wid}/webhooks/{webhook_id}/test", status_code=202, response_model=WebhookDelivery)
def test_webhook(principal: WorkspacePrincipal, webhook_id: str) -> dict:
    return api.test_webhook(get_services(), principal, webhook_id)


@app.get("/workspaces/{wid}/webhooks/{webhook_id}/deliveries", response_model=ListOf[WebhookDelivery])
def list_deliveries(principal: WorkspacePrincipal, webhook_id: str, cursor: str | None = Cursor,
                    limit: int | None = Limit) -> Page:
    return api.list_deliveries(principal, webhook_id, cursor, limit_param(limit))


@app.post("/workspaces/{wid}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", status_code=202,
          response_model=WebhookDelivery, responses=documented(Conflict))
def retry_delivery(principal: WorkspacePrincipal, webhook_id: str,
                   delivery_id: str) -> dict:
    return api.retry_delivery(get_services(), principal, webhook_id, delivery_id)


handler = lambda_handler(app)
