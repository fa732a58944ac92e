"""The agenthq command's shape (installable as a console script, an `admin` sub-app), where it
sends credentials (TLS, or plaintext to loopback only), and how it prints what events say."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from agenthq_cli.admin import parse_override
from agenthq_cli.endpoints import EndpointError, check_private
from agenthq_cli.main import app
from local.template import ROOT


def test_pyproject_exposes_the_agenthq_console_script():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"agenthq": "agenthq_cli.main:app"}
    assert project["tool"]["setuptools"]["packages"]["find"]["where"] == ["cli"]


def test_make_installed_the_command_into_the_virtualenv():
    assert (Path(sys.executable).parent / "agenthq").exists(), "make's venv step runs `pip install -e .`"


def test_admin_is_a_sub_app_with_the_operator_commands():
    root = get_command(app)
    admin = root.commands["admin"]
    assert set(admin.commands) >= {"workspace", "usage"}
    assert set(admin.commands["workspace"].commands) >= {"get", "set-tier", "list"}


@pytest.mark.parametrize(("text", "expected"), [
    ("api_rps=500", ("api_rps", 500)),
    ("price_usd_per_month=4800.50", ("price_usd_per_month", "4800.50")),
    (" max_agents = 7 ", ("max_agents", 7)),
])
def test_overrides_parse_as_key_value(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["api_rps", "=5", ""])
def test_malformed_overrides_are_refused(text):
    with pytest.raises(typer.BadParameter):
        parse_override(text)


# --------------------------------------------------------------------------- where credentials may go (issue 18)


@pytest.mark.parametrize("url", ["https://abc.execute-api.eu-west-1.amazonaws.com/v1", "wss://x.example.com/v1",
                                 "http://127.0.0.1:3000/v1", "ws://127.0.0.1:3001/v1", "http://localhost:3000/v1",
                                 "ws://[::1]:3001/v1", "http://127.8.9.10/v1", "HTTPS://API.EXAMPLE.COM/v1"])
def test_tls_anywhere_and_plaintext_to_loopback_are_allowed(url):
    assert check_private(url, "the API") == url


@pytest.mark.parametrize("url", ["http://api.example.com/v1", "ws://api.example.com/v1", "http://10.0.0.5:3000/v1",
                                 "ws://192.168.1.2:3001/v1", "http://localhost.example.com/v1", "http://[::2]/v1",
                                 "ftp://127.0.0.1/v1", "https:///v1", "127.0.0.1:3000/v1"])
def test_plaintext_beyond_loopback_and_non_urls_are_refused(url):
    with pytest.raises(EndpointError):
        check_private(url, "the API")


@pytest.fixture()
def cli_env(tmp_path, monkeypatch):
    for name in ("AGENTHQ_API_URL", "AGENTHQ_WS_URL", "AGENTHQ_API_KEY", "AGENTHQ_WORKSPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTHQ_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config" / "agenthq" / "config.json"


def test_login_refuses_a_plaintext_api_beyond_loopback_before_sending_the_password(cli_env):
    result = CliRunner().invoke(app, ["login", "--api-url", "http://api.example.com/v1", "--email", "a@example.com",
                                      "--password", "secret-password"])
    assert result.exit_code == 1
    assert "in clear text (http://api.example.com)" in result.output and "https://" in result.output
    assert not cli_env.exists(), "nothing stored"
    refused = CliRunner().invoke(app, ["login", "--api-url", "https://api.example.com/v1", "--ws-url",
                                       "ws://live.example.com/v1", "--email", "a@example.com", "--password", "x"])
    assert refused.exit_code == 1 and "in clear text (ws://live.example.com)" in refused.output


def test_every_command_refuses_a_plaintext_api_or_websocket_beyond_loopback(cli_env, monkeypatch):
    monkeypatch.setenv("AGENTHQ_API_KEY", "ahq_live_not-a-real-key")
    monkeypatch.setenv("AGENTHQ_WORKSPACE_ID", "01WS")
    monkeypatch.setenv("AGENTHQ_API_URL", "http://api.example.com/v1")
    listed = CliRunner().invoke(app, ["agents", "list"])
    assert listed.exit_code == 1 and "in clear text" in listed.output
    operator = CliRunner().invoke(app, ["admin", "workspace", "get", "01WS", "--api-url", "http://api.example.com/v1"])
    assert operator.exit_code == 2 and "in clear text" in operator.output

    monkeypatch.setenv("AGENTHQ_API_URL", "https://api.example.com/v1")
    monkeypatch.setenv("AGENTHQ_WS_URL", "ws://live.example.com/v1")
    watched = CliRunner().invoke(app, ["runs", "watch", "01RUN"])
    assert watched.exit_code == 1 and "in clear text (ws://live.example.com)" in watched.output


def test_runs_watch_prints_event_text_as_it_is_not_as_markup():
    from rich.console import Console

    from agenthq_cli.user import _line

    said = "[/bold] [link=https://evil.example]click[/link] [red on red]hidden[/]"
    console = Console(record=True, width=400, color_system="truecolor")
    console.print(_line({"seq": 7, "type": "tool.result", "at": "2026-12-07T00:00:00Z", "data": {"text": said}}))
    console.print(_line({"seq": 8, "type": "run.failed[/red]", "data": {}}))
    html = console.export_html(clear=False)
    text = console.export_text()
    assert f"text={said}" in text, text
    assert "run.failed[/red]" in text
    assert "evil.example" in html and 'href="https://evil.example"' not in html, "shown, never a link"
