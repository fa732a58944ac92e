"""One version number: CHANGELOG.md's newest release is what the code, the CLI, the template and the
API contract say. (/v1/health reporting it: tests/integration/test_health.py.)"""

from __future__ import annotations

import json
import re
import tomllib
from datetime import date

from typer.testing import CliRunner

import agenthq
import agenthq_cli
from agenthq.settings import Settings
from agenthq_cli.main import app
from local.template import ROOT, load_template

RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.M)


def changelog_releases() -> list[tuple[str, str]]:
    """(version, date) of each release in CHANGELOG.md, newest first."""
    return RELEASE.findall((ROOT / "CHANGELOG.md").read_text())


def released() -> str:
    return changelog_releases()[0][0]


def test_the_changelog_lists_releases_newest_first_under_an_unreleased_section():
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = changelog_releases()
    assert releases, "CHANGELOG.md has no release heading (## [x.y.z] - YYYY-MM-DD)"
    assert text.index("## [Unreleased]") < text.index(f"## [{releases[0][0]}]")
    as_numbers = [tuple(int(part) for part in version.split(".")) for version, _ in releases]
    assert as_numbers == sorted(as_numbers, reverse=True) and len(set(as_numbers)) == len(as_numbers)
    dates = [date.fromisoformat(day) for _, day in releases]
    assert dates == sorted(dates, reverse=True)


def test_every_place_that_names_the_version_names_the_newest_release():
    version = released()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    template = load_template()["Globals"]["Function"]["Environment"]["Variables"]["APP_VERSION"]
    contract = json.loads((ROOT / "functions" / "openapi" / "openapi.json").read_text())["info"]["version"]
    places = {
        "agenthq.__version__ (the functions' layer)": agenthq.__version__,
        "agenthq_cli.__version__": agenthq_cli.__version__,
        "pyproject.toml (the CLI package)": pyproject,
        "template.yaml's APP_VERSION (what /v1/health reports)": template,
        "functions/openapi/openapi.json (make openapi)": contract,
        "Settings' default APP_VERSION": Settings.model_fields["version"].default,
    }
    wrong = {place: found for place, found in places.items() if found != version}
    assert not wrong, f"CHANGELOG.md's newest release is {version}; these say otherwise: {wrong}"


def test_agenthq_version_prints_it():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"agenthq {released()}"
