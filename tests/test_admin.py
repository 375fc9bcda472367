"""The admin UI at /admin: who gets in, what it refuses, and that its changes follow the API's
rules. Driven in-process like the API tests; tests/test_admin_browser.py drives a real browser."""

import html
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import exists, update
from sqlmodel import col

from project.admin import CROSS_SITE
from project.admin.forms import STALE
from project.app import create_app
from project.auth import sessions as login_sessions
from project.config import Settings
from project.models import AuthSession, RefreshToken, User, utcnow
from project.services.teams import NAME_TAKEN as TEAM_TAKEN
from project.services.users import LAST_SUPERUSER
from tests.conftest import AccountFactory
from tests.factories import PASSWORD, Account, create, login

AdminClient = Callable[[], AsyncClient]
VIEWS = ("user", "team", "hero", "power")


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[AdminClient]:
    """Makes clients with cookie jars of their own, like separate browsers."""
    clients: list[AsyncClient] = []

    def make() -> AsyncClient:
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        clients.append(AsyncClient(transport=transport, base_url="http://testserver"))
        return clients[-1]

    yield make
    for made in clients:
        await made.aclose()


async def sign_in(http: AsyncClient, email: str, password: str = PASSWORD) -> Response:
    return await http.post("/admin/login", data={"username": email, "password": password})


async def signed_in(browser: AdminClient, who: Account) -> AsyncClient:
    http = browser()
    response = await sign_in(http, who.email, who.password)
    assert response.status_code == 302, response.text
    return http


def errors(response: Response) -> list[str]:
    """The messages a page shows: the form's alert or the login form's feedback."""
    found = re.findall(
        r'class="(?:alert alert-danger|invalid-feedback)"[^>]*>([^<]+)<', response.text
    )
    return sorted({html.unescape(text.strip()) for text in found})


def assert_sent_to_login(response: Response) -> None:
    assert response.status_code == 302, response.text
    assert response.headers["location"].endswith("/admin/login")


async def set_user(app: FastAPI, who: Account, **values: Any) -> None:
    async with app.state.database.session(write=True) as session:
        await session.execute(update(User).where(col(User.id) == uuid.UUID(who.id)).values(values))
        await session.commit()


async def api_get(client: AsyncClient, who: Account, path: str) -> Any:
    response = await client.get(f"/api/v1/{path}", headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()


def edit_version(page: Response) -> str:
    match = re.search(
        r'name="version"[^>]*value="(\d+)"|value="(\d+)"[^>]*name="version"', page.text
    )
    assert match, page.text
    return match.group(1) or match.group(2)


# --- signing in -----------------------------------------------------------------------------


async def test_a_superuser_signs_in_and_reaches_every_view(
    browser: AdminClient, admin: Account
) -> None:
    http = browser()
    assert_sent_to_login(await http.get("/admin/"))
    response = await sign_in(http, admin.email.upper(), admin.password)
    assert response.status_code == 302
    assert response.headers["location"] == "http://testserver/admin/"
    index = await http.get("/admin/")
    assert index.status_code == 200
    for view in VIEWS:
        assert f"/admin/{view}/list" in index.text
        assert (await http.get(f"/admin/{view}/list")).status_code == 200


async def test_the_sign_in_form_asks_for_the_email(browser: AdminClient) -> None:
    page = await browser().get("/admin/login")
    assert page.status_code == 200
    label = re.search(r'<label[^>]*\bfor="(\w+)"[^>]*>([^<]*)</label>', page.text)
    assert label is not None and label[2] == "Email", page.text
    field = re.search(rf'<input[^>]*\bid="{label[1]}"[^>]*>', page.text, re.DOTALL)
    assert field is not None and 'name="username"' in field[0]  # what the form posts
    hint = re.search(r'aria-describedby="([\w-]+)"', field[0])
    assert hint is not None
    assert re.search(rf'id="{hint[1]}"[^>]*>The email you sign in with\.<', page.text)


async def test_the_session_cookie_is_httponly_strict_and_only_for_the_admin(
    browser: AdminClient, admin: Account
) -> None:
    response = await sign_in(browser(), admin.email, admin.password)
    flags = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert flags[0].startswith("admin_session=")
    assert {"httponly", "samesite=strict", "path=/admin"} <= set(flags)
    assert "secure" not in flags  # development and tests run on plain http


async def test_the_session_cookie_is_secure_in_production(
    settings: Settings, admin: Account
) -> None:
    production = create_app(settings.model_copy(update={"environment": "production"}))
    async with production.router.lifespan_context(production):
        transport = ASGITransport(app=production)
        async with AsyncClient(transport=transport, base_url="https://testserver") as http:
            response = await sign_in(http, admin.email, admin.password)
    assert response.status_code == 302
    assert "secure" in [part.strip().lower() for part in response.headers["set-cookie"].split(";")]


@pytest.mark.parametrize("who", ["wrong password", "unknown email", "user", "inactive superuser"])
async def test_everyone_else_is_refused_with_one_message(
    app: FastAPI, browser: AdminClient, account: AccountFactory, admin: Account, who: str
) -> None:
    email, password = admin.email, admin.password
    if who == "wrong password":
        password = "not the password"
    elif who == "unknown email":
        email = "nobody@example.com"
    elif who == "user":
        email = (await account()).email
    else:
        inactive = await account(superuser=True)
        await set_user(app, inactive, is_active=False)
        email = inactive.email
    http = browser()
    response = await sign_in(http, email, password)
    assert response.status_code == 400
    assert errors(response) == ["Invalid credentials."]
    assert "set-cookie" not in response.headers
    assert_sent_to_login(await http.get("/admin/"))


def _requests(team_id: str) -> list[tuple[str, str, dict[str, str] | None]]:
    pages = [("GET", "/admin/", None)]
    for view in VIEWS:
        pages += [
            ("GET", f"/admin/{view}/list", None),
            ("GET", f"/admin/{view}/create", None),
            ("POST", f"/admin/{view}/create", {"name": "Intruders", "headquarters": "Nowhere"}),
            ("GET", f"/admin/{view}/details/{team_id}", None),
            ("GET", f"/admin/{view}/edit/{team_id}", None),
            ("POST", f"/admin/{view}/edit/{team_id}", {"name": "Taken", "headquarters": "Here"}),
            ("DELETE", f"/admin/{view}/delete?pks={team_id}", None),
        ]
    return pages


@pytest.mark.parametrize("who", ["anonymous", "user", "demoted superuser", "deactivated superuser"])
async def test_no_admin_page_is_reachable_without_an_active_superuser(
    app: FastAPI,
    client: AsyncClient,
    browser: AdminClient,
    account: AccountFactory,
    alice: Account,
    who: str,
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="New York")
    http = browser()
    if who == "user":
        await sign_in(http, alice.email, alice.password)
    elif who != "anonymous":
        # Signed in while a superuser; what counts is what they are now.
        former = await account(superuser=True)
        http = await signed_in(browser, former)
        change = {"is_superuser": False} if who == "demoted superuser" else {"is_active": False}
        await set_user(app, former, **change)
    for method, url, form in _requests(team["id"]):
        response = await http.request(method, url, data=form)
        assert_sent_to_login(response)
    assert await api_get(client, alice, f"teams/{team['id']}") == {**team, "heroes_count": 0}
    assert (await api_get(client, alice, "teams"))["items"] == [{**team, "heroes_count": 0}]


async def test_logout_ends_the_sign_in_even_for_a_copied_cookie(
    browser: AdminClient, admin: Account
) -> None:
    http = await signed_in(browser, admin)
    stolen = dict(http.cookies)
    assert_sent_to_login(await http.get("/admin/logout"))
    thief = browser()
    thief.cookies.update(stolen)
    assert_sent_to_login(await thief.get("/admin/"))


async def test_logout_all_through_the_api_ends_the_admin_sign_in(
    client: AsyncClient, browser: AdminClient, admin: Account
) -> None:
    http = await signed_in(browser, admin)
    assert (await http.get("/admin/")).status_code == 200
    assert (await client.post("/api/v1/auth/logout-all", headers=admin.headers)).status_code == 204
    assert_sent_to_login(await http.get("/admin/"))


async def test_losing_superuser_rights_ends_the_admin_sign_in_for_good(
    client: AsyncClient, browser: AdminClient, admin: Account, account: AccountFactory
) -> None:
    other = await account(superuser=True)
    http = await signed_in(browser, other)
    path = f"/api/v1/users/{other.id}"
    for rights in (False, True):  # demoted, then promoted again before the cookie is used
        body = {"is_superuser": rights}
        assert (await client.patch(path, json=body, headers=admin.headers)).status_code == 200
    assert_sent_to_login(await http.get("/admin/"))


async def test_an_admin_sign_in_outlives_the_pruning_of_api_sessions(
    app: FastAPI, client: AsyncClient, browser: AdminClient, admin: Account
) -> None:
    """An admin sign-in is a login session without refresh tokens: pruning, at an API
    sign-in or by the command, leaves it alone until its own lifetime has passed."""
    http = await signed_in(browser, admin)
    assert (await login(client, admin.email, admin.password)).status_code == 200
    lifetime = app.state.settings.admin_session_lifetime
    async with app.state.database.session(write=True) as session:
        assert await login_sessions.prune(session, lifetime) == (0, 0)
        await session.commit()
    assert (await http.get("/admin/")).status_code == 200

    async with app.state.database.session(write=True) as session:
        await session.execute(
            update(AuthSession)
            .where(~exists().where(col(RefreshToken.session_id) == AuthSession.id))
            .values(created_at=utcnow() - lifetime - timedelta(minutes=1))
        )
        assert await login_sessions.prune(session, lifetime) == (1, 0)
        await session.commit()
    assert_sent_to_login(await http.get("/admin/"))


async def test_failed_admin_sign_ins_are_throttled_together_with_the_api(
    client: AsyncClient, browser: AdminClient, admin: Account
) -> None:
    http = browser()
    for _ in range(5):
        assert (await sign_in(http, admin.email, "wrong password")).status_code == 400
    locked = await sign_in(http, admin.email, admin.password)
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 900
    assert errors(locked) == ["Too many failed sign-in attempts; wait before trying again."]
    assert (await login(client, admin.email, admin.password)).status_code == 429


# --- cross-site requests and browser policy ------------------------------------------------

CROSS_SITE_HEADERS = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another origin all the same
    {"Origin": "https://evil.example"},  # a browser without Fetch Metadata
    {"Origin": "null"},
]


@pytest.mark.parametrize("headers", CROSS_SITE_HEADERS)
async def test_a_cross_site_post_is_refused(
    client: AsyncClient,
    browser: AdminClient,
    admin: Account,
    alice: Account,
    headers: dict[str, str],
) -> None:
    http = await signed_in(browser, admin)
    form = {"owner_id": admin.id, "name": "Forged", "headquarters": "Elsewhere", "save": "Save"}
    response = await http.post("/admin/team/create", data=form, headers=headers)
    assert response.status_code == 403
    assert response.json()["detail"] == CROSS_SITE
    forged = await http.delete(f"/admin/user/delete?pks={alice.id}", headers=headers)
    assert forged.status_code == 403
    assert (await client.get("/api/v1/users/me", headers=alice.headers)).status_code == 200
    assert (await api_get(client, admin, "teams"))["items"] == []


@pytest.mark.parametrize(
    "headers", [{"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://testserver"}, {}]
)
async def test_the_admins_own_posts_are_accepted(
    client: AsyncClient, browser: AdminClient, admin: Account, headers: dict[str, str]
) -> None:
    http = await signed_in(browser, admin)
    form = {"owner_id": admin.id, "name": "Avengers", "headquarters": "New York", "save": "Save"}
    response = await http.post("/admin/team/create", data=form, headers=headers)
    assert response.status_code == 302, errors(response)
    assert [t["name"] for t in (await api_get(client, admin, "teams"))["items"]] == ["Avengers"]


async def test_a_cross_site_sign_in_is_refused(browser: AdminClient, admin: Account) -> None:
    http = browser()
    forged = await http.post(
        "/admin/login",
        data={"username": admin.email, "password": admin.password},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert forged.status_code == 403
    assert "set-cookie" not in forged.headers


async def test_other_sites_may_link_to_the_admin_but_not_read_it(
    browser: AdminClient, admin: Account
) -> None:
    http = await signed_in(browser, admin)
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert (await http.get("/admin/hero/list", headers=link)).status_code == 200
    read = {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}
    assert (await http.get("/admin/hero/list", headers=read)).status_code == 403


async def test_admin_pages_load_only_their_own_files(client: AsyncClient) -> None:
    page = await client.get("/admin/login")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src" not in policy  # scripts fall back to 'self': nothing inline, no CDN
    assert "frame-ancestors 'none'" in policy
    assert page.headers["referrer-policy"] == "same-origin"
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.text)
    assert len(assets) >= 5
    for asset in assets:
        assert asset.startswith("http://testserver/admin/statics/"), asset
        assert (await client.get(asset)).status_code == 200
    api = await client.get("/health/live")
    assert api.headers["content-security-policy"].startswith("default-src 'none'")


# --- users ---------------------------------------------------------------------------------


async def test_a_new_user_can_sign_in_to_the_api_and_the_hash_never_shows(
    client: AsyncClient, browser: AdminClient, admin: Account
) -> None:
    http = await signed_in(browser, admin)
    form = {"email": "Ada@Example.com", "full_name": "Ada", "is_active": "y", "password": PASSWORD}
    created = await http.post("/admin/user/create", data={**form, "save": "Save"})
    assert created.status_code == 302, errors(created)
    assert (await login(client, "ada@example.com", PASSWORD)).status_code == 200
    [ada] = (await api_get(client, admin, "users?q=ada"))["items"]
    assert (ada["email"], ada["is_active"], ada["is_superuser"]) == ("ada@example.com", True, False)
    for page in ("list", f"details/{ada['id']}", f"edit/{ada['id']}"):
        text = (await http.get(f"/admin/user/{page}")).text.lower()
        assert "ada@example.com" in text
        assert "$argon2" not in text
        assert "hashed" not in text


async def test_a_new_user_needs_a_valid_password(
    client: AsyncClient, browser: AdminClient, admin: Account
) -> None:
    http = await signed_in(browser, admin)
    form = {"email": "ada@example.com", "password": "short", "save": "Save"}
    refused = await http.post("/admin/user/create", data=form)
    assert refused.status_code == 400
    assert errors(refused) == ["password: String should have at least 8 characters"]
    assert (await login(client, "ada@example.com", "short")).status_code == 401


def _user_form(who: Account, **changes: Any) -> dict[str, Any]:
    form = {"email": who.email, "full_name": "", "is_active": "y", "save": "Save"}
    return {key: value for key, value in {**form, **changes}.items() if value is not None}


async def test_a_new_password_ends_the_users_sessions(
    client: AsyncClient, browser: AdminClient, admin: Account, alice: Account
) -> None:
    http = await signed_in(browser, admin)
    form = _user_form(alice, password="a brand new password")
    response = await http.post(f"/admin/user/edit/{alice.id}", data=form)
    assert response.status_code == 302, errors(response)
    assert (await client.get("/api/v1/users/me", headers=alice.headers)).status_code == 401
    refresh = {"refresh_token": alice.tokens["refresh_token"]}
    refreshed = await client.post("/api/v1/auth/refresh", json=refresh)
    assert refreshed.status_code == 401
    assert (await login(client, alice.email, alice.password)).status_code == 401
    assert (await login(client, alice.email, "a brand new password")).status_code == 200


async def test_deactivating_a_user_ends_their_sessions_and_keeps_the_password(
    app: FastAPI, client: AsyncClient, browser: AdminClient, admin: Account, alice: Account
) -> None:
    http = await signed_in(browser, admin)
    response = await http.post(
        f"/admin/user/edit/{alice.id}", data=_user_form(alice, is_active=None)
    )
    assert response.status_code == 302, errors(response)
    assert (await client.get("/api/v1/users/me", headers=alice.headers)).status_code == 401
    assert (await login(client, alice.email, alice.password)).status_code == 401
    await set_user(app, alice, is_active=True)
    assert (await login(client, alice.email, alice.password)).status_code == 200


async def test_a_user_made_inactive_cannot_sign_in(
    client: AsyncClient, browser: AdminClient, admin: Account
) -> None:
    http = await signed_in(browser, admin)
    form = {"email": "eve@example.com", "password": PASSWORD, "save": "Save"}  # box unticked
    created = await http.post("/admin/user/create", data=form)
    assert created.status_code == 302, errors(created)
    [eve] = (await api_get(client, admin, "users?q=eve"))["items"]
    assert eve["is_active"] is False
    assert (await login(client, "eve@example.com", PASSWORD)).status_code == 401


async def test_editing_a_users_name_keeps_their_sessions(
    client: AsyncClient, browser: AdminClient, admin: Account, alice: Account
) -> None:
    http = await signed_in(browser, admin)
    edited = await http.post(
        f"/admin/user/edit/{alice.id}", data=_user_form(alice, full_name="Alice Liddell")
    )
    assert edited.status_code == 302, errors(edited)
    assert (await api_get(client, alice, "users/me"))["full_name"] == "Alice Liddell"
    refresh = {"refresh_token": alice.tokens["refresh_token"]}
    assert (await client.post("/api/v1/auth/refresh", json=refresh)).status_code == 200


async def test_deleting_a_user_ends_their_sessions_and_takes_what_they_owned(
    client: AsyncClient, browser: AdminClient, admin: Account, alice: Account
) -> None:
    team = await client.post(
        "/api/v1/teams",
        json={"name": "Wonderland", "headquarters": "Oxford"},
        headers=alice.headers,
    )
    assert team.status_code == 201
    http = await signed_in(browser, admin)
    deleted = await http.delete(f"/admin/user/delete?pks={alice.id}")
    assert deleted.status_code == 200 and "error=" not in deleted.text, deleted.text
    assert (await client.get("/api/v1/users/me", headers=alice.headers)).status_code == 401
    assert (await login(client, alice.email, alice.password)).status_code == 401
    gone = await client.get(f"/api/v1/teams/{team.json()['id']}", headers=admin.headers)
    assert gone.status_code == 404
    missing = await client.get(f"/api/v1/users/{alice.id}", headers=admin.headers)
    assert missing.status_code == 404


async def test_the_last_superuser_stays(
    client: AsyncClient, browser: AdminClient, admin: Account
) -> None:
    http = await signed_in(browser, admin)
    demote = await http.post(f"/admin/user/edit/{admin.id}", data=_user_form(admin))
    assert demote.status_code == 400
    assert errors(demote) == [LAST_SUPERUSER]
    delete = await http.delete(f"/admin/user/delete?pks={admin.id}")
    assert "error=" in delete.text
    assert (await api_get(client, admin, "users/me"))["is_superuser"] is True


# --- teams, heroes and powers --------------------------------------------------------------


async def test_team_names_are_unique_per_owner(
    client: AsyncClient,
    browser: AdminClient,
    admin: Account,
    alice: Account,
    bob: Account,
    logged: pytest.LogCaptureFixture,
) -> None:
    http = await signed_in(browser, admin)

    async def make(owner: Account, name: str) -> Response:
        form = {"owner_id": owner.id, "name": name, "headquarters": "HQ", "save": "Save"}
        return await http.post("/admin/team/create", data=form)

    assert (await make(alice, "Avengers")).status_code == 302
    clash = await make(alice, "AVENGERS")
    assert clash.status_code == 400
    assert errors(clash) == [TEAM_TAKEN]
    assert not [r for r in logged.records if r.levelno >= logging.ERROR]  # a refusal, not an error
    assert (await make(bob, "Avengers")).status_code == 302
    for owner in (alice, bob):
        [team] = (await api_get(client, owner, "teams"))["items"]
        assert (team["name"], team["owner_id"]) == ("Avengers", owner.id)


async def test_blank_text_is_refused_in_words(browser: AdminClient, admin: Account) -> None:
    """As in the API: only blanks is refused, and the message says so without a pattern."""
    http = await signed_in(browser, admin)
    form = {"owner_id": admin.id, "name": "Avengers", "headquarters": "   ", "save": "Save"}
    refused = await http.post("/admin/team/create", data=form)
    assert refused.status_code == 400
    assert errors(refused) == [
        "headquarters: String should have a visible character, not only blanks"
    ]


async def test_an_edit_of_a_row_changed_meanwhile_is_refused(
    client: AsyncClient, browser: AdminClient, admin: Account, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="New York")
    http = await signed_in(browser, admin)
    opened = edit_version(await http.get(f"/admin/team/edit/{team['id']}"))
    patched = await client.patch(
        f"/api/v1/teams/{team['id']}", json={"headquarters": "Compound"}, headers=alice.headers
    )
    assert patched.status_code == 200
    form = {"name": "Avengers", "headquarters": "Tower", "version": opened, "save": "Save"}
    stale = await http.post(f"/admin/team/edit/{team['id']}", data=form)
    assert stale.status_code == 400
    assert errors(stale) == [STALE]
    assert (await api_get(client, alice, f"teams/{team['id']}"))["headquarters"] == "Compound"
    form["version"] = edit_version(await http.get(f"/admin/team/edit/{team['id']}"))
    assert (await http.post(f"/admin/team/edit/{team['id']}", data=form)).status_code == 302
    saved = await api_get(client, alice, f"teams/{team['id']}")
    assert (saved["headquarters"], saved["version"]) == ("Tower", team["version"] + 2)


async def test_a_hero_is_made_with_its_owners_team_and_powers(
    client: AsyncClient, browser: AdminClient, admin: Account, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="New York")
    flight = await create(client, alice, "powers", name="Flight")
    http = await signed_in(browser, admin)
    form = {
        "owner_id": alice.id,
        "name": "Spider-Boy",
        "secret_name": "Pedro Parqueador",
        "age": "16",
        "team": team["id"],
        "powers": [flight["id"]],
        "save": "Save",
    }
    created = await http.post("/admin/hero/create", data=form)
    assert created.status_code == 302, errors(created)
    [hero] = (await api_get(client, alice, "heroes"))["items"]
    assert (hero["name"], hero["age"], hero["owner_id"]) == ("Spider-Boy", 16, alice.id)
    assert hero["team"]["id"] == team["id"]
    assert [p["name"] for p in hero["powers"]] == ["Flight"]
    listed = await http.get("/admin/hero/list")
    assert all(text in listed.text for text in ("Spider-Boy", "Avengers", "Flight", alice.email))
    details = await http.get(f"/admin/hero/details/{hero['id']}")
    assert details.status_code == 200
    assert "Avengers" in details.text


async def test_a_hero_cannot_take_another_owners_team_or_power(
    client: AsyncClient, browser: AdminClient, admin: Account, alice: Account, bob: Account
) -> None:
    bobs_team = await create(client, bob, "teams", name="Bob's", headquarters="Bob's place")
    bobs_power = await create(client, bob, "powers", name="Bob's power")
    http = await signed_in(browser, admin)
    base = {"owner_id": alice.id, "name": "Hero", "secret_name": "Secret", "save": "Save"}
    for extra, message in (
        ({"team": bobs_team["id"]}, f"The owner has no team with id {bobs_team['id']}."),
        ({"powers": bobs_power["id"]}, f"The owner has no power with id {bobs_power['id']}."),
    ):
        refused = await http.post("/admin/hero/create", data={**base, **extra})
        assert refused.status_code == 400
        assert errors(refused) == [message]
    assert (await api_get(client, alice, "heroes"))["items"] == []


async def test_editing_a_hero_can_change_only_its_powers(
    client: AsyncClient, browser: AdminClient, admin: Account, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="New York")
    flight = await create(client, alice, "powers", name="Flight")
    hero = await create(client, alice, "heroes", name="Ada", secret_name="A", team_id=team["id"])
    http = await signed_in(browser, admin)
    page = await http.get(f"/admin/hero/edit/{hero['id']}")
    form = {
        "name": "Ada",
        "secret_name": "A",
        "team": team["id"],
        "powers": [flight["id"]],
        "version": edit_version(page),
        "save": "Save",
    }
    response = await http.post(f"/admin/hero/edit/{hero['id']}", data=form)
    assert response.status_code == 302, errors(response)
    saved = await api_get(client, alice, f"heroes/{hero['id']}")
    assert [p["id"] for p in saved["powers"]] == [flight["id"]]
    assert (saved["team"]["id"], saved["version"]) == (team["id"], hero["version"] + 1)


async def test_deleting_a_team_or_power_changes_its_heroes_as_the_api_does(
    client: AsyncClient, browser: AdminClient, admin: Account, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="New York")
    flight = await create(client, alice, "powers", name="Flight")
    hero = await create(
        client,
        alice,
        "heroes",
        name="Ada",
        secret_name="A",
        team_id=team["id"],
        power_ids=[flight["id"]],
    )
    http = await signed_in(browser, admin)
    assert (await http.delete(f"/admin/team/delete?pks={team['id']}")).status_code == 200
    assert (await http.delete(f"/admin/power/delete?pks={flight['id']}")).status_code == 200
    saved = await api_get(client, alice, f"heroes/{hero['id']}")
    assert (saved["team"], saved["powers"], saved["version"]) == (None, [], hero["version"] + 2)
    assert (await api_get(client, alice, "teams"))["items"] == []
    assert (await http.delete(f"/admin/hero/delete?pks={hero['id']}")).status_code == 200
    assert (
        await client.get(f"/api/v1/heroes/{hero['id']}", headers=alice.headers)
    ).status_code == 404


async def test_the_hero_list_searches_sorts_and_filters(
    client: AsyncClient, browser: AdminClient, admin: Account, alice: Account, bob: Account
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="New York")
    await create(
        client, alice, "heroes", name="Ada", secret_name="Countess", age=36, team_id=team["id"]
    )
    await create(client, alice, "heroes", name="Bea", secret_name="Bee", age=20)
    await create(client, bob, "heroes", name="Cy", secret_name="Cyborg", age=50)
    http = await signed_in(browser, admin)

    async def names(query: str) -> list[str]:
        page = await http.get(f"/admin/hero/list?{query}")
        assert page.status_code == 200, page.text
        return [
            n for n in re.findall(r"<td>([A-Z][a-z]+)</td>", page.text) if n in {"Ada", "Bea", "Cy"}
        ]

    assert await names("") == ["Ada", "Bea", "Cy"]
    assert await names("search=COUNT") == ["Ada"]
    assert await names("sortBy=age&sort=desc") == ["Cy", "Ada", "Bea"]
    assert await names(f"team_id={team['id']}") == ["Ada"]
    assert await names(f"owner_id={bob.id}") == ["Cy"]
    assert await names("age=30&age_op=greater_than") == ["Ada", "Cy"]
    assert (await http.get("/admin/hero/list?team_id=not-an-id")).status_code == 400


@pytest.mark.parametrize("view", VIEWS)
async def test_a_malformed_or_unknown_id_is_not_found(
    browser: AdminClient, admin: Account, view: str
) -> None:
    http = await signed_in(browser, admin)
    for pk in ("not-an-id", uuid.uuid4()):
        assert (await http.get(f"/admin/{view}/details/{pk}")).status_code == 404
        assert (await http.get(f"/admin/{view}/edit/{pk}")).status_code == 404
    assert (await http.delete(f"/admin/{view}/delete?pks=not-an-id")).status_code == 404
    unknown = await http.delete(f"/admin/{view}/delete?pks={uuid.uuid4()}")
    assert unknown.text.endswith("?error=404%3A+Object+not+found")  # the page to show next


async def test_no_row_names_a_file_to_download(
    client: AsyncClient, browser: AdminClient, admin: Account, alice: Account
) -> None:
    """sqladmin serves a column's value as a file under the working directory; no column here
    holds a file, and a hero named after one (the database, `.env`) must not hand it out."""
    body = {"name": "pyproject.toml", "secret_name": ".env"}
    hero = (await client.post("/api/v1/heroes", json=body, headers=alice.headers)).json()
    http = await signed_in(browser, admin)
    for column in ("name", "secret_name"):
        for action in ("download", "preview"):
            response = await http.get(f"/admin/hero/{hero['id']}/{column}/{action}/")
            assert response.status_code == 404, (column, action)
            assert "[tool.poetry" not in response.text
        missing = await http.get(f"/admin/hero/{uuid.uuid4()}/{column}/preview/")
        assert missing.status_code == 404


async def test_a_method_a_page_does_not_take_is_405_with_allow(
    browser: AdminClient, admin: Account
) -> None:
    """The admin's error page is HTML, but says which methods the page takes (RFC 9110)."""
    http = await signed_in(browser, admin)
    for method, path in (("PUT", "/admin/"), ("OPTIONS", "/admin/"), ("DELETE", "/admin/login")):
        response = await http.request(method, path)
        assert response.status_code == 405
        assert "GET" in response.headers["allow"], (method, path)


HOSTILE = (
    "99999999999999999999999", "-99999999999999999999999", "1e400", "nan", "-1", "", "__all",
    "%00", "x" * 5000, "%E2%80%AE", "%FF", "' OR 1=1 --", "true", "[]",
)  # fmt: skip


async def test_the_admin_lists_and_deletes_answer_every_query_without_a_500(
    browser: AdminClient, admin: Account
) -> None:
    """Every filter, operation, search, sort and page parameter the lists read, and the
    delete action, given what a fuzzer would: a 4xx or a page, never a 500."""
    http = await signed_in(browser, admin)
    parameters = (
        "age", "team_id", "owner_id", "is_active", "is_superuser", "search", "sortBy", "sort",
        "page", "pageSize",
    )  # fmt: skip
    for view in VIEWS:
        for name in parameters:
            for value in HOSTILE:
                ops = ("&age_op=greater_than", "&age_op=equals", "&age_op=bogus", "")
                for op in ops if name == "age" else ("",):
                    listed = await http.get(f"/admin/{view}/list?{name}={value}{op}")
                    assert listed.status_code < 500, (view, name, value, op)
        for query in ("", "?pks=", "?pks=,", "?pks=nope", f"?pks={uuid.uuid4()}", "?other=1"):
            deleted = await http.delete(f"/admin/{view}/delete{query}")
            assert deleted.status_code < 500, (view, query)
    refused = await http.delete("/admin/hero/delete")
    assert refused.status_code == 400
    assert "pks" in refused.json()["detail"]
    huge = await http.get("/admin/hero/list?age=99999999999999999999999&age_op=greater_than")
    assert huge.status_code == 400
    # The connection is still good for the next request (it was reset after the 500).
    assert (await http.get("/admin/hero/list?age=3&age_op=greater_than")).status_code == 200
