"""The JWT signing keys of the local cloud: generated once, kept on disk.

On AWS the auth function creates the keys in SSM on first use. Locally SSM is
moto's (in memory), so the keys are saved in the data folder and put back into
moto's SSM at every start: tokens issued before a restart stay valid. The
functions read them from SSM exactly as on AWS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def seed_signing_keys(ssm: Any, signing_parameter: str, public_parameter: str, data_dir: Path | None) -> None:
    from agenthq.security.tokens import generate_signing_key, public_jwks

    path = data_dir / "jwt-signing-keys.json" if data_dir else None
    if path and path.exists():
        keys = json.loads(path.read_text())["keys"]
    else:
        keys = [generate_signing_key()]
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"keys": keys}, f)
    ssm.put_parameter(Name=signing_parameter, Type="SecureString", Overwrite=True, Value=json.dumps({"keys": keys}))
    ssm.put_parameter(Name=public_parameter, Type="String", Overwrite=True, Value=json.dumps(public_jwks(keys)))
