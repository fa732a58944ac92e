"""AgentHQ: the domain and adapters shared by every Lambda function."""

__version__ = "0.2.0"
