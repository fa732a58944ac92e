"""Step Functions: where runs and offboarding jobs are started, stopped and resumed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"


@dataclass(frozen=True)
class Execution:
    """One execution of a state machine, as DescribeExecution tells it."""

    name: str
    status: str  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED (| PENDING_REDRIVE)
    started_at: datetime
    stopped_at: datetime | None
    input: dict[str, Any]
    output: dict[str, Any] | None  # the final state, once it succeeded


class Orchestrator(Protocol):
    def ping(self) -> None: ...
    def start(self, name: str, payload: dict[str, Any]) -> str: ...
    def send_next(self, task_token: str, next_step: str) -> bool: ...
    def describe(self, name: str) -> Execution | None: ...
    def stop(self, name: str, cause: str) -> None: ...


class StepFunctionsOrchestrator:
    """The real orchestrator: one state machine on Step Functions (agent runs, or offboarding jobs)."""

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

    def describe(self, name: str) -> Execution | None:
        """The execution named ``name``, or None if there is none."""
        try:
            found = self.client.describe_execution(executionArn=self.execution_arn(name))
        except self.client.exceptions.ExecutionDoesNotExist:
            return None
        output = found.get("output")
        return Execution(name=name, status=found["status"], started_at=found["startDate"],
                         stopped_at=found.get("stopDate"), input=json.loads(found.get("input") or "{}"),
                         output=json.loads(output) if output else None)

    def stop(self, name: str, cause: str) -> None:
        """Stop the execution named ``name`` (a task already running finishes on its own). Idempotent."""
        try:
            self.client.stop_execution(executionArn=self.execution_arn(name), cause=cause[:32768])
        except self.client.exceptions.ExecutionDoesNotExist:
            pass

    def execution_arn(self, name: str) -> str:
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:", 1)
        return f"{arn}:{name}"
