"""Browser tests: headless Debian chromium (/usr/bin/chromium) driven by Playwright.

Playwright's own browser download does not work here (and is never run): the
tests launch the system chromium by path. Without it they FAIL rather than
skip, so CI cannot pass them silently (.ci/run installs the ``chromium``
package). Screenshots of each main page go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from support.browser import People, Person
from support.webstack import WebStack, running_stack

CHROMIUM = Path(os.environ.get("SEISAN_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    with running_stack(tmp_path_factory.mktemp("browser")) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: apt-get install chromium (see .ci/run)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def person(browser: Browser, web: WebStack) -> Iterator[People]:
    """``person(phone=True, locale="ja-JP")``: a fresh browser context; closed after the test."""
    contexts: list[BrowserContext] = []

    def make(phone: bool = False, locale: str = "en-GB") -> Person:
        viewport = {"width": 390, "height": 844} if phone else {"width": 1200, "height": 900}
        context = browser.new_context(viewport=viewport, locale=locale)  # type: ignore[arg-type]
        contexts.append(context)
        return Person(context, web)

    yield make
    for context in contexts:
        context.close()
