"""The ``agenthq`` command: AgentHQ from the command line.

``agenthq admin …`` are the operator's commands, SigV4-signed with the
operator's AWS credentials (:mod:`agenthq_cli.signing`). User commands join the
same Typer app (:mod:`agenthq_cli.main`) as sub-apps of their own.
"""

__version__ = "0.2.0"
