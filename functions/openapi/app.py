"""GET /v1/openapi.json: the API's contract, no authentication.

The document is made at build time from every function's app (``make
openapi``, agenthq.openapi) and ships with this function, so serving it
imports none of their code."""

import json
from functools import cache
from pathlib import Path
from typing import Any

from agenthq.http import create_app, lambda_handler

DOCUMENT = Path(__file__).with_name("openapi.json")

app = create_app("openapi")


@cache
def contract() -> dict[str, Any]:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


@app.get("/openapi.json", summary="The API's contract (this document)")
def get_openapi() -> dict:
    return contract()


handler = lambda_handler(app)
