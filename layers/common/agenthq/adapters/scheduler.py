"""EventBridge Scheduler: one schedule per AgentHQ schedule, in the deployment's schedule group.

Each schedule's target is the fire function (SCHEDULE_TARGET_ARN), invoked with
the role SCHEDULE_ROLE_ARN (trusted by scheduler.amazonaws.com, allowed to invoke
only that function). Its input carries ids and Scheduler's own fire time, never
the schedule's content: the fire function reads that from the table.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

#: Scheduler puts the time a fire was due into the target's input here (a context attribute).
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
#: How long Scheduler keeps redelivering a fire the function failed (then it is dropped): an hour.
MAX_EVENT_AGE_SECONDS = 3600


class Scheduler(Protocol):
    def put(self, name: str, expression: str, timezone: str, target_input: dict[str, Any], enabled: bool) -> None:
        """Create the schedule ``name``, or replace it when it exists."""

    def delete(self, name: str) -> None:
        """Delete the schedule ``name``; nothing when it does not exist."""


class EventBridgeScheduler:
    def __init__(self, client: Any, group_name: str, target_arn: str, role_arn: str) -> None:
        self.client = client
        self.group_name = group_name
        self.target_arn = target_arn
        self.role_arn = role_arn

    def _request(self, name: str, expression: str, timezone: str, target_input: dict[str, Any],
                 enabled: bool) -> dict[str, Any]:
        return {
            "Name": name, "GroupName": self.group_name, "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": timezone, "State": "ENABLED" if enabled else "DISABLED",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {"Arn": self.target_arn, "RoleArn": self.role_arn, "Input": json.dumps(target_input),
                       "RetryPolicy": {"MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS,
                                       "MaximumRetryAttempts": 10}},
        }

    def put(self, name: str, expression: str, timezone: str, target_input: dict[str, Any], enabled: bool) -> None:
        request = self._request(name, expression, timezone, target_input, enabled)
        try:
            self.client.update_schedule(**request)
        except self.client.exceptions.ResourceNotFoundException:
            self.client.create_schedule(**request)

    def delete(self, name: str) -> None:
        try:
            self.client.delete_schedule(Name=name, GroupName=self.group_name)
        except self.client.exceptions.ResourceNotFoundException:
            pass
