"""Ctrl-C in `make dev`'s terminal stops the local cloud in order: the components that use
the table first, DynamoDB Local last. The terminal sends SIGINT to its whole foreground
process group; when the JVM was in it, it died at once under the stream mappings and
workers still polling it (a traceback on the way out, and a delivery lost mid-flight).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A process that starts DynamoDB Local as the local cloud does, then does what a terminal's Ctrl-C does
# (SIGINT to its own process group; it keeps running itself, as `python -m local` does to stop in order), and checks the table still answers.
CTRL_C = textwrap.dedent("""
    import os, signal, sys, time
    import boto3
    from local.dynamodb_local import DynamoDBLocal

    signal.signal(signal.SIGINT, lambda *_: None)  # a handler, as local/__main__.py's (not SIG_IGN: inherited)
    ddb = DynamoDBLocal().start()
    try:
        os.killpg(os.getpgid(0), signal.SIGINT)
        time.sleep(1.0)
        client = boto3.client("dynamodb", endpoint_url=ddb.endpoint, region_name="us-east-1",
                              aws_access_key_id="local", aws_secret_access_key="local")
        client.list_tables()
        print("answers after Ctrl-C")
    finally:
        process = ddb.process
        ddb.stop()
        print("stopped" if process.poll() is not None else "still running")
""")


def test_ctrl_c_to_the_terminal_leaves_dynamodb_local_to_the_local_clouds_stop():
    result = subprocess.run([sys.executable, "-c", CTRL_C], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            start_new_session=True)  # a process group of its own, as a terminal's
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["answers", "after", "Ctrl-C", "stopped"], result.stdout + result.stderr
