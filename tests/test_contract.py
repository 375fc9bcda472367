"""The HTTP contract every endpoint shares: problem+json for every error the framework
itself raises, body and media-type limits, headers, CORS, and the OpenAPI document."""

import base64
import gzip
import hashlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text

from project.api.deps import SessionDep
from project.app import create_app
from project.config import Settings
from project.web.docs import STATIC
from tests.factories import (
    PRODUCTION_DATABASE,
    Account,
    assert_problem,
    create,
    login,
    production_settings,
)
from tests.server import run_python


async def test_unknown_path_is_a_problem(client: AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/nothing-here"), 404)
    assert body["title"] == "Not Found"


async def test_wrong_method_is_405_with_allow(client: AsyncClient, alice: Account) -> None:
    response = await client.put("/api/v1/teams", json={}, headers=alice.headers)
    assert_problem(response, 405)
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    created = await client.post("/api/v1/powers", json={"name": "Flight"}, headers=alice.headers)
    one = await client.post(created.headers["location"], headers=alice.headers)
    assert_problem(one, 405)
    assert set(one.headers["allow"].replace(" ", "").split(",")) == {
        "DELETE",
        "GET",
        "HEAD",
        "PATCH",
    }


async def test_head_is_a_get_without_its_body(client: AsyncClient, alice: Account) -> None:
    created = await client.post("/api/v1/powers", json={"name": "Flight"}, headers=alice.headers)
    path = created.headers["location"]
    got = await client.get(path, headers=alice.headers)
    head = await client.head(path, headers=alice.headers)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["content-length"] == str(len(got.content))
    assert (await client.head("/health/live")).status_code == 200
    refused = await client.head(path)
    assert refused.status_code == 401 and refused.content == b""
    assert refused.headers["www-authenticate"] == "Bearer"


async def test_a_body_over_the_limit_is_413_before_it_is_read(
    client: AsyncClient, alice: Account
) -> None:
    huge = b'{"name": "' + b"x" * (1024 * 1024) + b'", "headquarters": "y"}'
    declared = await client.post(
        "/api/v1/teams", content=huge, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert assert_problem(declared, 413)["title"] == "Content Too Large"  # RFC 9110's name

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    streamed = await client.post(
        "/api/v1/teams",
        content=chunks(),
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert_problem(streamed, 413)
    listed = await client.get("/api/v1/teams", headers=alice.headers)
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_a_body_that_is_not_json_is_415(
    client: AsyncClient, alice: Account, content_type: str | None
) -> None:
    headers = dict(alice.headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post(
        "/api/v1/teams", content=b'{"name": "A", "headquarters": "B"}', headers=headers
    )
    assert_problem(response, 415)
    assert response.headers["accept"] == "application/json"  # what it takes (RFC 9110)


async def test_a_patch_refused_for_its_media_type_says_which_one_it_takes(
    client: AsyncClient, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="A", headquarters="B")
    response = await client.patch(
        f"/api/v1/teams/{team['id']}",
        content=b"name=C",
        headers={**alice.headers, "Content-Type": "text/plain"},
    )
    assert_problem(response, 415)
    assert response.headers["accept-patch"] == "application/json"  # RFC 5789 §2.2


async def test_a_sign_in_form_in_another_charset_is_415(
    client: AsyncClient, alice: Account
) -> None:
    """Read as UTF-8, `é` in Latin-1 would be another password, and a failed sign-in."""
    for content_type in ("application/x-www-form-urlencoded; charset=ISO-8859-1", "text/plain"):
        response = await client.post(
            "/api/v1/auth/login",
            content=b"username=alice%40example.com&password=caf%E9caf%E9",
            headers={"Content-Type": content_type},
        )
        assert_problem(response, 415)
        accept = "application/x-www-form-urlencoded, multipart/form-data"
        assert response.headers["accept"] == accept
    assert (await login(client, alice.email, alice.password)).status_code == 200


async def test_json_with_a_charset_or_a_json_suffix_is_fine(
    client: AsyncClient, alice: Account
) -> None:
    for n, content_type in enumerate(
        ("application/json; charset=utf-8", "application/merge-patch+json")
    ):
        response = await client.post(
            "/api/v1/powers",
            content=f'{{"name": "P{n}"}}'.encode(),
            headers={**alice.headers, "Content-Type": content_type},
        )
        assert response.status_code == 201, response.text


async def test_a_body_it_cannot_read_as_sent_is_415(client: AsyncClient, alice: Account) -> None:
    """A compressed body or another charset would be misread as plain UTF-8 JSON: refused,
    saying what is accepted."""
    body = b'{"name": "Zipped"}'
    zipped = await client.post(
        "/api/v1/powers",
        content=gzip.compress(body),
        headers={**alice.headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert "uncompressed" in assert_problem(zipped, 415)["detail"]
    assert zipped.headers["accept-encoding"] == "identity"
    latin = await client.post(
        "/api/v1/powers",
        content=body,
        headers={**alice.headers, "Content-Type": "application/json; charset=latin-1"},
    )
    assert "UTF-8" in assert_problem(latin, 415)["detail"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "\xe9t\xe9"}',  # Latin-1
        *(
            '{"name": "Flight"}'.encode(encoding)  # the parser would detect and read these
            for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32")
        ),
    ],
    ids=["latin-1", "utf-16", "utf-16-le", "utf-16-be", "utf-32"],
)
async def test_json_that_is_not_utf_8_says_so(
    client: AsyncClient, alice: Account, body: bytes
) -> None:
    response = await client.post(
        "/api/v1/powers",
        content=body,
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert assert_problem(response, 422)["errors"][0]["msg"] == "The JSON is not UTF-8."
    listed = await client.get("/api/v1/powers", headers=alice.headers)
    assert listed.json()["items"] == []


async def test_a_utf_8_byte_order_mark_is_allowed(client: AsyncClient, alice: Account) -> None:
    """RFC 8259 §8.1 lets a parser ignore one."""
    response = await client.post(
        "/api/v1/powers",
        content='{"name": "Flight"}'.encode("utf-8-sig"),
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("query", ["q=%FF", "q=%ED%A0%80", "q=caf%E9", "sort=name&q=a%C3"])
async def test_a_query_that_is_not_utf_8_is_422(
    client: AsyncClient, alice: Account, query: str
) -> None:
    """Not searched for with U+FFFD in place of the bytes it could not read."""
    response = await client.get(f"/api/v1/teams?{query}", headers=alice.headers)
    assert assert_problem(response, 422)["errors"][0]["msg"] == "The query is not UTF-8."
    fine = await client.get("/api/v1/teams?q=caf%C3%A9%20%2B+x", headers=alice.headers)
    assert fine.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Type", "application/json"), ("Content-Encoding", "identity, gzip")],
        [
            ("Content-Type", "application/json"),
            ("Content-Encoding", "identity"),
            ("Content-Encoding", "gzip"),
        ],
        [("Content-Type", "application/json"), ("Content-Type", "text/plain; charset=utf-16")],
    ],
    ids=["two codings", "two Content-Encoding headers", "two Content-Types"],
)
async def test_repeated_body_headers_are_all_read(
    client: AsyncClient, alice: Account, headers: list[tuple[str, str]]
) -> None:
    """A second Content-Encoding or Content-Type is not skipped over: the body is refused
    unless every one of them says it is plain JSON."""
    response = await client.post(
        "/api/v1/powers",
        content=b'{"name": "Flight"}',
        headers=[*alice.headers.items(), *headers],
    )
    assert_problem(response, 415)


async def test_a_sign_in_sent_as_multipart_form_data_works(
    client: AsyncClient, alice: Account
) -> None:
    """What `fetch` sends for a `FormData`: as good as the urlencoded form."""
    form = {"username": (None, alice.email), "password": (None, alice.password)}
    response = await client.post("/api/v1/auth/login", files=form)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=xyz"],
    ids=["no boundary", "no parts"],
)
async def test_a_multipart_form_that_cannot_be_parsed_is_422(
    client: AsyncClient, content_type: str
) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b"username=a&password=b",
        headers={"Content-Type": content_type},
    )
    [error] = assert_problem(response, 422)["errors"]
    assert error["msg"].startswith("The form cannot be parsed")


MALFORMED = [b"{not json", b"[]", b'"text"', b"null", b"\xff\xfe", b"\x80abc", b"\xe9t\xe9"]
LONE_SURROGATE = b'{"name": "\\ud800"}'
TOO_DEEP = b"[" * 200_000 + b"]" * 200_000
TOO_LONG_A_NUMBER = b'{"name": ' + b"9" * 5000 + b"}"


@pytest.mark.parametrize("payload", [*MALFORMED, LONE_SURROGATE, TOO_DEEP, TOO_LONG_A_NUMBER])
async def test_malformed_json_is_422(client: AsyncClient, alice: Account, payload: bytes) -> None:
    response = await client.post(
        "/api/v1/powers",
        content=payload,
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert assert_problem(response, 422)["errors"]


async def test_a_client_gone_before_its_body_ended_is_no_server_error(
    app: FastAPI, alice: Account, logged: pytest.LogCaptureFixture
) -> None:
    """A client that hangs up halfway through its body: nothing is written, and the log
    shows a 400 of the client's making, not an unhandled error of the server's."""
    body = b'{"name": "Half'
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/powers",
        "raw_path": b"/api/v1/powers",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"t"),
            (b"content-type", b"application/json"),
            (b"content-length", b"100"),
            (b"authorization", alice.headers["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    messages = iter([{"type": "http.request", "body": body, "more_body": True}])

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    statuses = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    assert statuses == [400]
    assert "unhandled error" not in logged.text


async def test_security_headers_and_request_id(client: AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    echoed = await client.get("/health/live", headers={"X-Request-ID": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    unsafe = await client.get("/health/live", headers={"X-Request-ID": "bad id\twith junk"})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])
    problem = await client.get("/nowhere")
    assert problem.headers["x-content-type-options"] == "nosniff"


async def test_a_handlers_own_headers_win_over_the_defaults(
    client: AsyncClient, alice: Account
) -> None:
    hero = await client.post(
        "/api/v1/heroes", json={"name": "H", "secret_name": "S"}, headers=alice.headers
    )
    response = await client.get(
        f"/api/v1/heroes/{hero.json()['id']}",
        headers={**alice.headers, "X-Request-ID": "trace-456"},
    )
    assert response.headers.get_list("cache-control") == ["private, no-cache"]
    assert response.headers.get_list("x-request-id") == ["trace-456"]
    assert response.headers.get_list("x-frame-options") == ["DENY"]


def _sha256(script: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"


@pytest.mark.parametrize(
    ("page", "inline", "styles", "workers"),
    [("/docs", 1, "'self'", "'none'"), ("/redoc", 0, "'self' 'unsafe-inline'", "blob:")],
)
async def test_docs_run_only_their_own_files_and_the_scripts_they_name(
    client: AsyncClient, page: str, inline: int, styles: str, workers: str
) -> None:
    """Scripts and styles from this origin only; an inline script runs if the CSP names its
    hash; ReDoc styles what it renders inline, and searches in a worker made from a blob."""
    response = await client.get(page)
    assert response.status_code == 200
    policy = dict(
        directive.strip().partition(" ")[::2]
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert len(scripts) == inline  # Swagger UI's set-up
    assert policy["script-src"].split() == ["'self'", *map(_sha256, scripts)]
    assert (policy["style-src"], policy["worker-src"]) == (styles, workers)
    assert policy["img-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'"
    assert "http" not in response.headers["content-security-policy"]  # no other host


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_only_files_the_service_serves(client: AsyncClient, page: str) -> None:
    html = (await client.get(page)).text
    files = re.findall(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"([^\"]*)\"", html)
    assert len(files) == (3 if page == "/docs" else 2), html  # the UI's files and the icon
    for url in files:
        assert re.fullmatch(r"/docs/static/\d+\.\d+\.\d+/[\w.-]+\.(js|css|png)", url), url
        served = await client.get(url)
        assert served.status_code == 200, url
        kind = {"js": "text/javascript", "css": "text/css", "png": "image/png"}[url.split(".")[-1]]
        assert served.headers["content-type"].startswith(kind), url
        # Named by the release: a new one is a new URL, so browsers may keep each for good.
        assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert b"cdn.redoc.ly" not in served.content  # ReDoc's sidebar logo
    assert "fonts.googleapis.com" not in html
    if page == "/docs":  # and no badge from the online validator, which is swagger.io's
        assert '"validatorUrl": null' in html


async def test_a_file_the_docs_do_not_have_is_a_problem(client: AsyncClient) -> None:
    css = re.search(r'href="(/docs/static/[^"]+/)swagger-ui.css"', (await client.get("/docs")).text)
    assert css is not None
    for name in ("nothing.js", "..%2F..%2Fpyproject.toml", "%2e%2e"):
        assert_problem(await client.get(f"{css[1]}{name}"), 404)


async def test_cors_allows_configured_origins_only(client: AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization,if-match",
    }
    allowed = await client.options(
        "/api/v1/teams", headers={"Origin": "https://app.example.com", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    other = await client.options(
        "/api/v1/teams", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in other.headers
    assert "origin" in assert_problem(other, 400)["detail"]
    simple = await client.get("/health/live", headers={"Origin": "https://app.example.com"})
    exposed = {name.strip() for name in simple.headers["access-control-expose-headers"].split(",")}
    # A script can read what a response tells it to do next: the tag, where the new
    # resource is, when to retry, how to authenticate, which methods a path allows.
    assert {"ETag", "Location", "Retry-After", "WWW-Authenticate", "Allow"} <= exposed
    # The admin answers no other origin, with or without its cookie, preflight or not.
    for path in ("/admin/login", "/admin/team/list", "/admin"):
        page = await client.get(path, headers={"Origin": "https://app.example.com"})
        asked = await client.options(
            path, headers={"Origin": "https://app.example.com", **preflight}
        )
        for response in (page, asked):
            assert not any(h.startswith("access-control-") for h in response.headers), path


def test_cors_refuses_a_wildcard_with_credentials(settings: Settings) -> None:
    with pytest.raises(ValueError, match="CORS"):
        Settings(**{**settings.model_dump(), "cors_origins": ["*"]})


def test_production_refuses_the_development_key_or_a_short_one() -> None:
    from project.config import DEVELOPMENT_SECRET_KEY

    with pytest.raises(ValueError, match="development key"):
        production_settings(secret_key=DEVELOPMENT_SECRET_KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        Settings(_env_file=None, secret_key="too-short")  # type: ignore[call-arg, arg-type]
    assert production_settings().migrate_at_startup is False


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"log_level": "verbose"}, "log_level"),
        ({"database_url": "postgres://heroes@db/heroes"}, "not postgres://"),
        ({"database_url": "postgresql://heroes@db/heroes"}, "not postgresql://"),
        ({"database_url": ""}, "DATABASE_URL must start with"),
        ({"cors_origins": ["https://app.example.com/"]}, "no trailing slash"),
        ({"cors_origins": ["localhost:3000"]}, "not an origin"),
    ],
)
def test_settings_the_service_could_not_run_with_are_refused(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        production_settings(**values)


def test_production_needs_its_database_named_and_takes_any_spelling() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL must be set in production"):
        Settings(_env_file=None, environment="production", secret_key="k" * 48)  # type: ignore[call-arg, arg-type]
    spelled = production_settings(environment=" Production", log_level="warning")
    assert (spelled.environment, spelled.log_level) == ("production", "WARNING")


def test_check_settings_lists_every_problem_at_once(tmp_path: Path) -> None:
    from project.config import DEVELOPMENT_SECRET_KEY

    env = {
        "PATH": os.environ.get("PATH", ""),
        "ENVIRONMENT": "production",
        "SECRET_KEY": DEVELOPMENT_SECRET_KEY,
        "CORS_ORIGINS": "*,https://app.example.com/",
        "METRICS_ENABLED": "true",
        "LOG_LEVEL": "verbose",
        "ALLOWED_HOSTS": "https://api.example.com",
    }
    checked = run_python("-m", "project", "check-settings", env=env)
    assert checked.returncode == 2
    lines = checked.stderr.splitlines()
    for expected in (
        "development key",
        "CORS_ORIGINS may not be '*'",
        "no trailing slash",
        "DATABASE_URL must be set",
        "METRICS_TOKEN",
        "LOG_LEVEL must be one of",
        "ALLOWED_HOSTS: 'https://api.example.com' is not a host name",
    ):
        assert sum(expected in line for line in lines) == 1, (expected, lines)
    assert len(lines) == 7
    assert not any("Value error" in line for line in lines)


def test_production_reads_no_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`.env` holds development values: a production process must not pick them up."""
    env_file = tmp_path / ".env"
    env_file.write_text("CORS_ORIGINS=http://localhost:3000\n")
    monkeypatch.delenv("CORS_ORIGINS", raising=False)
    monkeypatch.setenv("ENVIRONMENT", "development")
    assert Settings(_env_file=env_file).cors_origins == ["http://localhost:3000"]  # type: ignore[call-arg]
    monkeypatch.setenv("SECRET_KEY", "k" * 48)
    monkeypatch.setenv("DATABASE_URL", PRODUCTION_DATABASE)
    monkeypatch.setenv("ALLOWED_HOSTS", "api.example.com")
    production = {"_env_file": env_file, "environment": "production"}
    assert Settings(**production).cors_origins == []  # type: ignore[arg-type]
    monkeypatch.delenv("ENVIRONMENT")
    monkeypatch.setenv("environment", "production")  # names are read case-insensitively
    assert Settings(_env_file=env_file).cors_origins == []  # type: ignore[call-arg]


async def test_an_unexpected_error_is_a_500_problem_without_a_traceback(
    app: FastAPI, client: AsyncClient
) -> None:
    async def boom() -> None:
        raise RuntimeError("secret internals: SELECT password FROM users")

    app.add_api_route("/boom", boom)
    response = await client.get("/boom")
    body = assert_problem(response, 500)
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert body["title"] == "Internal Server Error"
    assert response.headers["x-request-id"]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_database_error_is_logged_with_its_request_id_but_no_values(
    app: FastAPI, client: AsyncClient
) -> None:
    private = "-".join(("private", "value"))  # so the traceback's source lines lack it

    async def failing(session: SessionDep) -> None:
        statement = text("SELECT no_such_column FROM users WHERE email = :email")
        await session.execute(statement, {"email": private})

    app.add_api_route("/failing", failing)
    captured = _Records()
    logging.getLogger("project").addHandler(captured)  # after the service's own handler
    try:
        response = await client.get("/failing", headers={"X-Request-ID": "trace-me-42"})
    finally:
        logging.getLogger("project").removeHandler(captured)
    assert_problem(response, 500)
    [error] = [r for r in captured.records if r.getMessage() == "database error"]
    assert error.fields["request_id"] == "trace-me-42"  # type: ignore[attr-defined]
    assert error.exc_info is not None
    logged = logging.Formatter().formatException(error.exc_info)
    assert "no_such_column" in logged and private not in logged


async def test_docs_can_be_turned_off(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"docs_enabled": False}))
    from httpx import ASGITransport

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http:
        for path in ("/docs", "/redoc", "/openapi.json", f"{STATIC}/swagger-ui.css"):
            assert_problem(await http.get(path), 404)


async def test_docs_are_off_in_production_unless_turned_on() -> None:
    from httpx import ASGITransport

    for settings, served in (
        (production_settings(), False),
        (production_settings(docs_enabled=True), True),
        (Settings(_env_file=None, environment="development", allowed_hosts=["t"]), True),  # type: ignore[call-arg]
    ):
        app = create_app(settings)
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http:
            for path in ("/docs", "/redoc", "/openapi.json"):
                response = await http.get(path)
                assert (response.status_code == 200) is served, (settings.environment, path)


async def test_the_openapi_document_is_a_usable_manual(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation_ids = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), f"{where} has no summary"
            assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation["operationId"]), where
            operation_ids.append(operation["operationId"])
            errors = {code: r for code, r in operation["responses"].items() if code[0] in "45"}
            if path.startswith("/api/v1/"):
                assert "422" in errors and "503" in errors, where
            for code, response in errors.items():
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, f"{where} {code}"
                # The headers a client acts on are documented where they are sent.
                must = {"401": "WWW-Authenticate", "429": "Retry-After", "503": "Retry-After"}
                if code in must:
                    assert must[code] in response.get("headers", {}), f"{where} {code}"
            if method == "patch" and "412" in errors:
                assert "ETag" in operation["responses"]["200"]["headers"], where
            if path.startswith("/api/v1/") and not path.startswith("/api/v1/auth/"):
                assert "401" in errors, where
            for parameter in operation.get("parameters", []):
                assert parameter.get("description"), f"{where}: {parameter['name']} undescribed"
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if "304" in operation["responses"]:
                assert "412" in errors, f"{where}: a stale If-Match on a read"
            if "412" in errors:
                assert {"If-Match", "If-None-Match"} <= headers, where
            # A body of the wrong media type is refused only where a body is read.
            assert ("415" in errors) == ("requestBody" in operation), where
            body = operation.get("requestBody", {}).get("content", {})
            if "application/json" in body:
                ref = body["application/json"]["schema"]["$ref"].split("/")[-1]
                assert spec["components"]["schemas"][ref].get("examples"), f"{where} has no example"
    assert len(operation_ids) == len(set(operation_ids))
    assert {
        "create_hero",
        "list_heroes",
        "read_hero",
        "update_hero",
        "delete_hero",
        "login",
    } <= set(operation_ids)
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= problem["properties"].keys()
    assert sorted(problem["required"]) == ["detail", "status", "title", "type"]
    oauth = spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert oauth["flows"]["password"]["tokenUrl"] == "/api/v1/auth/login"
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert "503" in spec["paths"]["/health/ready"]["get"]["responses"]
    conditional = {
        (path, method)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
        if any(p["name"].startswith("If-") for p in operation.get("parameters", []))
    }
    assert {("/api/v1/heroes/{id}", m) for m in ("get", "patch", "delete")} <= conditional


async def test_every_success_body_is_described(client: AsyncClient) -> None:
    """A client generator needs each response's fields, list pages included."""
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            for code, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json")
                if code[0] != "2" or content is None or path == "/metrics":
                    continue
                ref = content["schema"]["$ref"].split("/")[-1]
                assert schemas[ref].get("properties"), f"{method.upper()} {path} {code}: {ref}"
    page = schemas["Page_HeroPublic_"]
    assert page["required"] == ["items", "next_cursor"]
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/HeroPublic"}
    assert page["properties"]["total"]["type"] == "integer"


async def test_the_document_types_what_a_client_sends_and_gets_as_it_is(
    client: AsyncClient,
) -> None:
    """What a TypeScript client generated from the document gets wrong otherwise: a field
    never sent as null typed `| null` and required (a default of null), a query parameter
    that could be null, an operation that needs no token but does not say so."""
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    errors = schemas["Problem"]["properties"]["errors"]
    assert errors["type"] == "array" and "default" not in errors
    form = schemas["LoginForm"]["properties"]  # a form field is a string or absent
    assert "null" not in json.dumps(form) and not any("default" in f for f in form.values())
    assert schemas["TokenPair"]["properties"]["token_type"]["const"] == "bearer"
    public = {"register", "login", "refresh", "logout", "live", "ready"} | {
        "request_password_reset",
        "confirm_password_reset",
        "verify_email",
        "resend_verification",
    }
    for methods in spec["paths"].values():
        for operation in methods.values():
            if operation["operationId"] in public:
                assert operation["security"] == [], operation["operationId"]
            else:
                assert operation["security"], operation["operationId"]
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert "null" not in json.dumps(parameter["schema"]), parameter


async def test_fields_a_response_always_carries_are_required_in_its_schema(
    client: AsyncClient, alice: Account
) -> None:
    """A client generator types an optional field as possibly absent (`age?: number`): a
    field sent on every response, null or not, must be listed as required."""
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    power = await client.post("/api/v1/powers", json={"name": "Flight"}, headers=alice.headers)
    hero = await client.post(
        "/api/v1/heroes", json={"name": "Ada", "secret_name": "A"}, headers=alice.headers
    )
    tokens = await client.post(
        "/api/v1/auth/login", data={"username": alice.email, "password": alice.password}
    )
    me = await client.get("/api/v1/users/me", headers=alice.headers)
    for schema, response in (
        ("PowerPublic", power),
        ("HeroPublic", hero),
        ("TokenPair", tokens),
        ("UserPublic", me),
    ):
        body = response.json()
        assert None in body.values() or schema == "TokenPair", f"{schema}: no null to check"
        assert sorted(schemas[schema]["required"]) == sorted(body), schema
