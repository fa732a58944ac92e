from agenthq_cli.main import app

app(prog_name="agenthq")
