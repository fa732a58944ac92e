"""DynamoDB Local: AWS's own emulator (a Java program), run as a child process.

It listens on 127.0.0.1 only, and answers no browser of another origin:
DynamoDBLocal.jar itself listens on every interface (it has no option for the
address) and allows every origin (``-cors *`` by default), so anyone on the
network, or any web page open in the developer's browser, could read and write
the local cloud's table. It is started through ``local/java/LoopbackDynamoDBLocal.java``
(the jar's own server, its connectors bound to 127.0.0.1), with ``-cors`` naming
an origin no page can have. A Java runtime without the compiler module
(a JRE, not a JDK) cannot run that launcher: DynamoDB Local then starts as the
jar does, on every interface, and a warning says so (docs/decisions.md 172).
"""

from __future__ import annotations

import functools
import logging
import shutil
import socket
import subprocess  # nosec B404  # starts DynamoDB Local (java), argv built here
import time
import urllib.error
import urllib.request
from pathlib import Path

from local.template import ROOT

JAR_DIR = ROOT / ".cache" / "dynamodb-local"
LAUNCHER = ROOT / "local" / "java" / "LoopbackDynamoDBLocal.java"
# The only origin DynamoDB Local allows: under .invalid (RFC 2606), so no web page is ever of it.
CORS_ALLOW = "http://agenthq-local-cloud.invalid"

logger = logging.getLogger(__name__)


@functools.cache
def can_run_source(java: str) -> bool:
    """Whether ``java`` runs a single-file source program (it has the compiler module: a JDK)."""
    try:
        listed = subprocess.run([java, "--list-modules"], capture_output=True, text=True,  # nosec B603  # fixed argv
                                timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.split("@")[0] == "jdk.compiler" for line in listed.splitlines())


class DynamoDBLocalError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DynamoDBLocal:
    """``with DynamoDBLocal(data_dir=...) as ddb: ddb.endpoint``.

    ``data_dir=None`` keeps everything in memory (tests); otherwise tables
    persist in ``data_dir`` across restarts (``make dev``). ``-sharedDb`` makes
    every access key and region see the same tables, as one AWS account would.
    """

    def __init__(self, port: int | None = None, data_dir: Path | None = None, jar_dir: Path = JAR_DIR) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.jar_dir = jar_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        java = shutil.which("java")
        if not java:
            raise DynamoDBLocalError("Java is required to run DynamoDB Local (Java 17 or newer).")
        jar = self.jar_dir / "DynamoDBLocal.jar"
        if not jar.exists():
            raise DynamoDBLocalError(f"{jar} is missing: run `make setup` to fetch DynamoDB Local.")
        if can_run_source(java):
            program = ["-cp", f"{jar}:{self.jar_dir / 'DynamoDBLocal_lib'}/*", str(LAUNCHER)]
        else:
            logger.warning("%s has no compiler module (a JRE, not a JDK): DynamoDB Local listens on every "
                           "interface, not only 127.0.0.1. Install a JDK 17 to keep it on this machine.", java)
            program = ["-jar", str(jar)]
        cmd = [
            java,
            "-Xms64m",
            "-XX:+UseSerialGC",
            f"-Djava.library.path={self.jar_dir / 'DynamoDBLocal_lib'}",
            *program,
            "-port", str(self.port),
            "-sharedDb",
            "-disableTelemetry",
            "-cors", CORS_ALLOW,
        ]
        if self.data_dir is None:
            cmd.append("-inMemory")
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["-dbPath", str(self.data_dir)]
        return cmd

    def start(self, timeout: float = 60.0) -> DynamoDBLocal:
        log_dir = ROOT / ".cache" / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"dynamodb-local-{self.port}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(  # nosec B603  # java with a fixed argv, no shell
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.jar_dir,
            # A group of its own: the terminal's Ctrl-C reaches `python -m local`, which stops the components that
            # use the table first and this process last (stop()); sent to the JVM too, it died under them.
            process_group=0,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log.close()
                said = [line.strip() for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
                raise DynamoDBLocalError(
                    f"DynamoDB Local exited with code {self.process.returncode}"
                    + (f" saying {said[-1]!r}" if said else "") + f"; its log: {self.log_path}"
                )
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise DynamoDBLocalError(f"DynamoDB Local did not answer within {timeout:.0f} s; see {self.log_path}")

    def _answers(self) -> bool:
        # Any HTTP answer (DynamoDB Local says 400 to a bare GET) means it is up.
        try:
            urllib.request.urlopen(self.endpoint, timeout=0.5)  # nosec B310  # http://127.0.0.1:<port>, built here
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
