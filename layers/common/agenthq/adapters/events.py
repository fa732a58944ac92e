"""Events for the operator, on an EventBridge bus (usage alerts, …)."""

from __future__ import annotations

import json
from typing import Any, Protocol

SOURCE = "agenthq"


class OperatorEvents(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...


class EventBridgeEvents:
    def __init__(self, client: Any, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        if not self.bus_name:
            return  # no bus configured (a unit test's settings): nothing to tell
        response = self.client.put_events(Entries=[{
            "Source": SOURCE, "DetailType": detail_type, "Detail": json.dumps(detail, default=str),
            "EventBusName": self.bus_name}])
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused the event: {response['Entries']}")
