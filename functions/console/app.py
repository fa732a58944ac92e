"""GET /v1/console and /v1/console/{proxy+}: the web console (HTML, CSS, JavaScript modules), no auth.

The files are in static/ (no build step) and ship with this function; the page
signs in against the API on the same origin and follows runs over the
WebSocket API, whose URL it reads from config.json (LIVE_URL). No table, no
AWS call: its role has no policy."""

from pathlib import Path
from typing import Any

from agenthq.console import ConsoleSite
from agenthq.settings import get_settings

site = ConsoleSite(Path(__file__).with_name("static"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return site.respond(event, get_settings())
