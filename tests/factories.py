"""Small helpers that build users and resources through the API, as a client would."""

import itertools
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import update
from sqlmodel import col

from project.config import Settings
from project.models import User

PASSWORD = "correct horse battery"
_numbers = itertools.count(1)


@dataclass
class Account:
    email: str
    password: str
    user: dict[str, Any]
    tokens: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.user["id"])


async def login(client: AsyncClient, email: str, password: str) -> Response:
    return await client.post("/api/v1/auth/login", data={"username": email, "password": password})


async def sign_up(http: AsyncClient, email: str) -> dict[str, str]:
    """Register and log in through the API; the Authorization header to send."""
    created = await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert created.status_code == 201, created.text
    tokens = await login(http, email, PASSWORD)
    assert tokens.status_code == 200, tokens.text
    return bearer(tokens.json())


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def make_account(
    client: AsyncClient,
    app: FastAPI,
    email: str | None = None,
    password: str = PASSWORD,
    superuser: bool = False,
    full_name: str | None = None,
) -> Account:
    email = email or f"user{next(_numbers)}@example.com"
    body: dict[str, Any] = {"email": email, "password": password}
    if full_name:
        body["full_name"] = full_name
    created = await client.post("/api/v1/auth/register", json=body)
    assert created.status_code == 201, created.text
    user = created.json()
    if superuser:
        # Promotion is not something the API lets a user do to themselves.
        async with app.state.database.session(write=True) as session:
            await session.execute(
                update(User).where(col(User.id) == uuid.UUID(user["id"])).values(is_superuser=True)
            )
            await session.commit()
        user["is_superuser"] = True
    signed_in = await login(client, email, password)
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    return Account(email, password, user, tokens, bearer(tokens))


async def signed_in_again(client: AsyncClient, who: Account) -> Account:
    """The same account in a new login session."""
    signed_in = await login(client, who.email, who.password)
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    return replace(who, tokens=tokens, headers=bearer(tokens))


async def create(client: AsyncClient, who: Account, resource: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/api/v1/{resource}", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status, and leaks nothing."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= body.keys()
    text = response.text.lower()
    for leak in ("traceback", "select ", "insert ", "sqlalchemy", "$argon2", "hashed_password"):
        assert leak not in text, f"{leak!r} leaked in {response.text}"
    return body


PRODUCTION_DATABASE = "postgresql+asyncpg://heroes@db/heroes"
# The hosts the suite's in-process clients send (`http://testserver`, `http://t`).
TEST_HOSTS = ["testserver", "t"]


def production_settings(**values: Any) -> Settings:
    """Settings as a production process would read them (no `.env`): a PostgreSQL URL and a
    strong key unless `values` say otherwise."""
    chosen = {
        "environment": "production",
        "database_url": PRODUCTION_DATABASE,
        "secret_key": "k" * 48,
        "allowed_hosts": TEST_HOSTS,
        **values,
    }
    return Settings(_env_file=None, **chosen)  # type: ignore[call-arg]
