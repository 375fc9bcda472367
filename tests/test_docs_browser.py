"""/docs and /redoc in a real browser (tests/browser.py), as a frontend developer uses them:
nothing loads from another origin, and nothing breaks the pages' Content-Security-Policy.

`UPDATE_SCREENSHOTS=1` also writes /docs' screenshot to docs/images/ (docs/frontend.md).
"""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.async_api import expect

from tests.browser import ADA, Watched, register_ada
from tests.conftest import ROOT
from tests.factories import PASSWORD
from tests.server import LiveServer

SCREENSHOT = ROOT / "docs" / "images" / "swagger-ui.png"


async def test_swagger_ui_signs_in_and_calls_the_api(
    watched: Watched,
    server: LiveServer,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    await register_ada(server)
    async with httpx.AsyncClient(base_url=server.url) as api:
        paths = (await api.get("/openapi.json")).json()["paths"]
    page = watched.page
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.goto(f"{server.url}/docs")
    me = page.locator("#operations-users-read_me")
    await expect(me).to_contain_text("/api/v1/users/me")
    await expect(page.locator(".opblock")).to_have_count(sum(map(len, paths.values())))

    await page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    await dialog.locator("#oauth_username").fill(ADA)
    await dialog.locator("#oauth_password").fill(PASSWORD)
    await dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
    await expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    await dialog.get_by_role("button", name="Close", exact=True).click()

    await me.locator(".opblock-summary").click()
    await me.get_by_role("button", name="Try it out").click()
    await me.get_by_role("button", name="Execute").click()
    answer = me.locator(".live-responses-table .response")
    await expect(answer.locator(".response-col_status")).to_have_text("200")
    await expect(answer.locator(".response-col_description")).to_contain_text(f'"email": "{ADA}"')

    screenshot = tmp_path / "swagger-ui.png"
    await me.evaluate("operation => operation.scrollIntoView()")  # down to its answer
    await page.screenshot(path=screenshot)
    record_property("screenshot", str(screenshot))
    if os.environ.get("UPDATE_SCREENSHOTS"):
        shutil.copyfile(screenshot, SCREENSHOT)
    assert watched.outside == []
    assert watched.errors == []  # no script error, no Content-Security-Policy violation


async def test_redoc_renders_the_operations(watched: Watched, server: LiveServer) -> None:
    page = watched.page
    await page.goto(f"{server.url}/redoc")
    await expect(page.get_by_role("heading", name="Read Me")).to_be_visible()
    await page.get_by_placeholder("Search...").fill("register")
    await expect(page.get_by_role("search")).to_contain_text("Register")
    assert watched.outside == []
    assert watched.errors == []
