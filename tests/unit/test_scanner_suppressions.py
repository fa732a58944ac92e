"""The security scanners' suppressions each carry a written reason, and `make test` runs the scanners.

checkov and bandit themselves run in `make scan` (a prerequisite of `make test`), not here:
checkov lives in its own virtualenv (docs/security.md, "Scanners").
"""

from __future__ import annotations

import re
import tokenize
from pathlib import Path

from local.template import ROOT, load_template

BANDIT_TARGETS = ["layers/common/agenthq", "functions", "local", "cli", "bench"]
NOSEC = re.compile(r"#\s*nosec\b(?P<rest>.*)")
NOSEC_WITH_REASON = re.compile(r"#\s*nosec (?P<ids>B\d{3}(?:, ?B\d{3})*)\s+#\s*(?P<reason>\S.{9,})")


def test_every_checkov_suppression_in_the_template_has_a_reason():
    skipped = 0
    for logical_id, resource in load_template()["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip.get("id", "")), (logical_id, skip)
            assert len(skip.get("comment", "").split()) >= 5, f"{logical_id} {skip['id']}: say why"
            skipped += 1
    assert skipped, "the template has no checkov suppressions at all? then this test is stale"


def _python_files() -> list[Path]:
    return sorted(p for target in BANDIT_TARGETS for p in (ROOT / target).rglob("*.py"))


def test_every_nosec_names_its_check_and_says_why():
    bare = []
    for path in _python_files():
        with open(path, "rb") as f:
            for token in tokenize.tokenize(f.readline):
                if token.type == tokenize.COMMENT and NOSEC.search(token.string):
                    if not NOSEC_WITH_REASON.search(token.string):
                        bare.append(f"{path.relative_to(ROOT)}:{token.start[0]}: {token.string}")
    assert not bare, "write '# nosec B123  # why it is safe':\n" + "\n".join(bare)


def test_make_test_runs_the_scanners():
    makefile = (ROOT / "Makefile").read_text()
    (prerequisites,) = re.findall(r"^test:([^#\n]*)", makefile, re.MULTILINE)
    assert "scan" in prerequisites.split()
    (recipe,) = re.findall(r"^scan:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert "bandit" in recipe and " ".join(BANDIT_TARGETS) in makefile
    assert "checkov" in recipe and "--framework cloudformation" in recipe
    assert "--soft-fail" not in recipe and "CKV_PARSE_ERROR_FAIL=true" in recipe
