"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import ARTIFACTS, CHROMIUM_INSTALL, ConsolePage, agenthq_cli, chromium_paths, headless_chromium


@pytest.fixture()
def page(cloud, request) -> Iterator[ConsolePage]:
    """The web console open in headless Chromium at its sign-in form, its screenshots kept in
    .artifacts/console/<test>/; the test fails if the page broke its Content-Security-Policy. Without
    Chromium the test is skipped, saying how to install it."""
    paths = chromium_paths()
    if paths is None:
        pytest.skip(f"the browser tests need Chromium and its driver, which are not installed: run "
                    f"`{CHROMIUM_INSTALL}` (as root, or with sudo) to run them")
    with headless_chromium(*paths) as driver:
        screenshots = ARTIFACTS / "console" / request.node.name
        for old in screenshots.glob("*.png"):
            old.unlink()
        console = ConsolePage(driver, cloud.console_url, screenshots)
        console.open()
        yield console
        assert console.policy_violations() == [], "the page broke its Content-Security-Policy"


@pytest.fixture()
def agenthq(cloud, tmp_path):
    """`agenthq` as a user runs it (tests.support.agenthq_cli), its home in the test's tmp_path. (test_cli.py
    has its own: the operator's, with AWS credentials.)"""
    return agenthq_cli(cloud, tmp_path)
