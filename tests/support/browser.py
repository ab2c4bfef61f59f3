"""A signed-in person in a browser context, for the browser tests (tests/browser)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, Page

from support.webstack import WebStack

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


class Person:
    """One signed-in browser context (its own cookies), phone-sized unless told."""

    def __init__(self, context: BrowserContext, web: WebStack) -> None:
        self.context = context
        self.page: Page = context.new_page()
        self.web = web

    def go(self, path: str) -> Page:
        self.page.goto(self.web.url + path)
        return self.page

    def sign_in(self, token: str) -> Person:
        page = self.go("/signin")
        page.fill("input[name=token]", token)
        page.click("#signin button[type=submit]")
        page.wait_for_url(lambda url: "/signin" not in url)
        return self

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


People = Callable[..., Person]
