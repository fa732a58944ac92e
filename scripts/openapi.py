"""Write (or ``--check``) functions/openapi/openapi.json, the API's contract,
from every function's FastAPI app (agenthq.openapi.contract).

    .venv/bin/python -m scripts.openapi           # make openapi
    .venv/bin/python -m scripts.openapi --check   # exit 1 when the file is stale
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "common"
FUNCTIONS = ROOT / "functions"
DOCUMENT = FUNCTIONS / "openapi" / "openapi.json"


def _layer_on_path() -> None:
    if str(LAYER) not in sys.path:  # as in Lambda, where the layer is on the path
        sys.path.insert(0, str(LAYER))
    # Importing an app reads the settings; building the document touches no table.
    os.environ.setdefault("TABLE_NAME", "agenthq-openapi-build")


def function_apps() -> dict[str, Any]:
    """Each REST function's FastAPI app, by function directory (functions/<name>/app.py)."""
    _layer_on_path()
    from fastapi import FastAPI

    apps = {}
    for path in sorted(FUNCTIONS.glob("*/app.py")):
        spec = importlib.util.spec_from_file_location(f"_openapi_{path.parent.name}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if isinstance(getattr(module, "app", None), FastAPI):
            apps[path.parent.name] = module.app
    return apps


def generate() -> dict[str, Any]:
    _layer_on_path()
    from agenthq import __version__
    from agenthq.openapi import contract

    return contract(function_apps().values(), __version__)


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render(generate())
    if "--check" in argv:
        if not DOCUMENT.exists() or DOCUMENT.read_text(encoding="utf-8") != text:
            print(f"{DOCUMENT.relative_to(ROOT)} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
