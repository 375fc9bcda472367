"""The admin in a real browser (tests/browser.py), against the real server.

`UPDATE_SCREENSHOTS=1` also writes the hero list's screenshot to docs/images/ (docs/operations.md).
"""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx

from project.admin import CROSS_SITE
from tests.browser import ADA, Watched, register_ada
from tests.conftest import ROOT
from tests.server import LiveServer

SCREENSHOT = ROOT / "docs" / "images" / "admin-heroes.png"


async def test_a_superuser_makes_a_team_and_a_hero_that_the_api_then_serves(
    watched: Watched,
    server: LiveServer,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    ada = await register_ada(server)
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
    ada = await register_ada(server)
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
