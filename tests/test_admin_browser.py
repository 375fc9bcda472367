"""The admin in a real browser: Debian's headless Chromium, driven by Playwright, against the
real server in a process of its own.

Without /usr/bin/chromium the tests skip with the reason, except where the `CI` variable is
set (as .ci/run does): there a missing browser fails them, so CI cannot pass without them.
`UPDATE_SCREENSHOTS=1` also writes the hero list's screenshot to docs/images/ (docs/operations.md).
"""

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, Page, Route, async_playwright

from project.admin import CROSS_SITE
from tests.conftest import ROOT
from tests.factories import PASSWORD
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
SCREENSHOT = ROOT / "docs" / "images" / "admin-heroes.png"


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
    """A page that may only talk to the server, and whose errors are kept."""

    def __init__(self, page: Page, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.outside: list[str] = []
        self.errors: list[str] = []
        page.set_default_timeout(15_000)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def local_only(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            self.outside.append(route.request.url)
            await route.abort()

    async def sign_in(self) -> None:
        await self.page.goto(f"{self.server.url}/admin/")
        await self.page.fill("input[name=username]", ROOT_EMAIL)
        await self.page.fill("input[name=password]", ROOT_PASSWORD)
        await self.page.click("button[type=submit]")
        await self.page.wait_for_url(f"{self.server.url}/admin/")


@pytest.fixture
async def watched(browser: Browser, server: LiveServer) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport={"width": 1360, "height": 600})
    watched = Watched(await context.new_page(), server)
    await context.route("**/*", watched.local_only)
    yield watched
    await context.close()


async def _register_ada(server: LiveServer) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=server.url) as api:
        registered = await api.post(
            "/api/v1/auth/register", json={"email": ADA, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        signed_in = await api.post(
            "/api/v1/auth/login", data={"username": ADA, "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
    return {"Authorization": f"Bearer {signed_in.json()['access_token']}"}


async def test_a_superuser_makes_a_team_and_a_hero_that_the_api_then_serves(
    watched: Watched,
    server: LiveServer,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    ada = await _register_ada(server)
    async with httpx.AsyncClient(base_url=server.url) as api:
        power = await api.post("/api/v1/powers", json={"name": "Wall-crawling"}, headers=ada)
        assert power.status_code == 201, power.text
    page = watched.page
    await watched.sign_in()

    await page.get_by_role("link", name="Teams", exact=True).click()
    await page.get_by_role("link", name="+ New Team").click()
    await page.select_option("#owner_id", label=ADA)
    await page.fill("#name", "Avengers")
    await page.fill("#headquarters", "Stark Tower, New York")
    await page.click("input[type=submit][value=Save]")
    await page.wait_for_url(f"{server.url}/admin/team/list")

    await page.get_by_role("link", name="Heroes", exact=True).click()
    await page.get_by_role("link", name="+ New Hero").click()
    await page.select_option("#owner_id", label=ADA)
    await page.fill("#name", "Spider-Boy")
    await page.fill("#secret_name", "Pedro Parqueador")
    await page.fill("#age", "16")
    await page.select_option("#team", label=f"Avengers · {ADA}")
    await page.select_option("#powers", label=f"Wall-crawling · {ADA}")
    await page.click("input[type=submit][value=Save]")
    await page.wait_for_url(f"{server.url}/admin/hero/list")
    row = page.locator("tbody tr", has_text="Spider-Boy")
    await row.get_by_text("Avengers").wait_for()
    await row.get_by_text("Wall-crawling").wait_for()

    screenshot = tmp_path / "admin-heroes.png"
    await page.screenshot(path=screenshot)
    record_property("screenshot", str(screenshot))
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, SCREENSHOT)
    assert screenshot.read_bytes().startswith(b"\x89PNG")

    async with httpx.AsyncClient(base_url=server.url) as api:
        heroes = await api.get("/api/v1/heroes", headers=ada)
    assert heroes.status_code == 200, heroes.text
    [hero] = heroes.json()["items"]
    assert (hero["name"], hero["secret_name"], hero["age"]) == (
        "Spider-Boy",
        "Pedro Parqueador",
        16,
    )
    assert (hero["team"]["name"], hero["team"]["headquarters"]) == (
        "Avengers",
        "Stark Tower, New York",
    )
    assert [p["name"] for p in hero["powers"]] == ["Wall-crawling"]
    assert hero["owner_id"] == hero["team"]["owner_id"]
    assert watched.outside == []  # every script, style and font came from the server itself
    assert watched.errors == []  # no script error, no Content-Security-Policy violation
    assert "Traceback" not in server.log()


FORGERY = """<!doctype html>
<form method="post" action="{url}/admin/team/create">
  <input name="owner_id" value="{owner}"><input name="name" value="Forged">
  <input name="headquarters" value="Elsewhere"><input name="save" value="Save">
</form>
<script>document.forms[0].submit()</script>
"""


async def test_a_page_on_another_site_cannot_post_an_admin_form(
    watched: Watched, server: LiveServer
) -> None:
    ada = await _register_ada(server)
    async with httpx.AsyncClient(base_url=server.url) as api:
        owner = (await api.get("/api/v1/users/me", headers=ada)).json()["id"]
    await watched.sign_in()
    # "localhost" is another site than "127.0.0.1"; the browser fetches nothing from it.
    attacker = f"http://localhost:{server.port}/prize"
    body = FORGERY.format(url=server.url, owner=owner)
    await watched.page.context.route(
        attacker, lambda route: route.fulfill(content_type="text/html", body=body)
    )
    async with watched.page.expect_response(f"{server.url}/admin/team/create") as forged:
        await watched.page.goto(attacker)
    response = await forged.value
    assert (await response.request.all_headers())["origin"] == f"http://localhost:{server.port}"
    assert response.status == 403
    assert (await response.json())["detail"] == CROSS_SITE
    async with httpx.AsyncClient(base_url=server.url) as api:
        teams = await api.get("/api/v1/teams", headers=ada)
    assert teams.json()["items"] == []
