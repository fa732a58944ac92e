"""The repository says under which license it is used: one LICENSE file (Apache-2.0), named by the README
and declared by the package (pyproject.toml)."""

from __future__ import annotations

import tomllib

from local.template import ROOT


def test_the_license_is_apache_2_0_and_named_by_the_readme_and_the_package():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text, "the whole license, not a notice"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    readme = (ROOT / "README.md").read_text()
    assert "## License" in readme and "](LICENSE)" in readme and "Apache License, Version 2.0" in readme
