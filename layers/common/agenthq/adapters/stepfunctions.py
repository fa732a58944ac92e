"""Step Functions: where runs are started, stopped and resumed."""

from __future__ import annotations

import json
from typing import Any, Protocol


class Orchestrator(Protocol):
    def ping(self) -> None: ...


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
        return response["executionArn"]

    def execution_arn(self, name: str) -> str:
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:", 1)
        return f"{arn}:{name}"
