"""Fixtures for tests in a real browser: Debian's headless Chromium, driven by Playwright,
against the real service in a process of its own, with no network beyond that server.
tests/conftest.py makes them every module's.

Without /usr/bin/chromium the tests skip with the reason, except where the `CI` variable is
set (as .ci/run does): there a missing browser fails them, so CI cannot pass without them.
"""

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, Page, Route, async_playwright, expect

from tests.factories import sign_up
from tests.server import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
# Without internet, background networking makes Chromium hang: switch all of it off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT_EMAIL, ROOT_PASSWORD = "root@example.com", "root password for the browser test"
ADA = "ada@example.com"


@pytest.fixture
def chromium() -> str:
    if not CHROMIUM.exists():
        reason = f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture
def server(database_url: str, tmp_path: Path, app: FastAPI) -> Iterator[LiveServer]:
    """The real service on empty tables (the `app` fixture empties them), with a superuser."""
    env = {"FIRST_SUPERUSER_EMAIL": ROOT_EMAIL, "FIRST_SUPERUSER_PASSWORD": ROOT_PASSWORD}
    with LiveServer(database_url, tmp_path, env=env) as live:
        yield live


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


class Watched:
    """A page that may only talk to the server under test, and whose errors are kept."""

    def __init__(self, page: Page, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.outside: list[str] = []
        self.errors: list[str] = []
        page.set_default_timeout(15_000)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def local_only(self, route: Route) -> None:
        url = urlsplit(route.request.url)
        if f"{url.scheme}://{url.netloc}" == self.server.url:
            await route.continue_()
        else:
            self.outside.append(route.request.url)
            await route.abort()

    async def sign_in(self) -> None:
        await self.page.goto(f"{self.server.url}/admin/")
        email = self.page.get_by_label("Email")
        await expect(email).to_have_accessible_description("The email you sign in with.")
        await email.fill(ROOT_EMAIL)
        await self.page.get_by_label("Password").fill(ROOT_PASSWORD)
        await self.page.click("button[type=submit]")
        await self.page.wait_for_url(f"{self.server.url}/admin/")


@pytest.fixture
async def watched(browser: Browser, server: LiveServer) -> AsyncIterator[Watched]:
    """A page in a browser of its own; the test fails if it asked anything of another origin."""
    context = await browser.new_context(viewport={"width": 1360, "height": 600})
    watched = Watched(await context.new_page(), server)
    await context.route("**/*", watched.local_only)
    yield watched
    await context.close()
    assert watched.outside == [], "the page asked another origin for these"


async def register_ada(server: LiveServer) -> dict[str, str]:
    """Ada's account, made through the API; the Authorization header to send."""
    async with httpx.AsyncClient(base_url=server.url) as api:
        return await sign_up(api, ADA)
