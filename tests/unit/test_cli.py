"""The agenthq command's shape: installable as a console script, an `admin` sub-app."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
import typer
from typer.main import get_command

from agenthq_cli.admin import parse_override
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
