"""The operator's side of AgentHQ (routes ``/v1/admin/…``, ``AWS_IAM`` only).

``workspaces``: every workspace, its tier, enterprise overrides and gateway
usage plan — and the only way to change a tier. ``usage``: each workspace's
month of cost against its price. The caller is always an
:class:`agenthq.operators.Operator`; no workspace principal ever gets here.
"""
