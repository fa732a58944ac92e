"""Step Functions: where runs are started, stopped and resumed."""

from __future__ import annotations

import json
from typing import Any, Protocol


class Orchestrator(Protocol):
    def ping(self) -> None: ...
    def start(self, name: str, payload: dict[str, Any]) -> str: ...
    def send_next(self, task_token: str, next_step: str) -> bool: ...


class StepFunctionsOrchestrator:
    """The real orchestrator: the agent-run state machine on Step Functions."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self.client = client
        self.state_machine_arn = state_machine_arn

    def ping(self) -> None:
        """Raise unless the state machine is reachable."""
        self.client.describe_state_machine(stateMachineArn=self.state_machine_arn)

    def start(self, name: str, payload: dict[str, Any]) -> str:
        """Start an execution named ``name`` (idempotent: the same name and
        input return the running execution). Returns its ARN."""
        try:
            response = self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload)
            )
        except self.client.exceptions.ExecutionAlreadyExists:
            return self.execution_arn(name)
        return str(response["executionArn"])

    def send_next(self, task_token: str, next_step: str) -> bool:
        """Complete a waiting task (WaitForChild, Paused) with the step that comes
        next. False when the token is no longer valid (the task timed out, was
        retried with a new token, or was already completed)."""
        try:
            # The waiting state puts this JSON string at $.loop.next (keeping $.loop.turn).
            self.client.send_task_success(taskToken=task_token, output=json.dumps(next_step))
        except (self.client.exceptions.TaskTimedOut, self.client.exceptions.InvalidToken,
                self.client.exceptions.TaskDoesNotExist):
            return False
        return True

    def execution_arn(self, name: str) -> str:
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:", 1)
        return f"{arn}:{name}"
