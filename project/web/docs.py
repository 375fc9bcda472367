"""The OpenAPI document, and /docs and /redoc. Swagger UI's and ReDoc's files come from the
fastapi-offline package, whose wheel's hash poetry.lock checks at install, and are served by the
service itself: the pages load nothing from another origin, and run no script the CSP does not
name (see docs/frontend.md)."""

import mimetypes
import re
from base64 import b64encode
from functools import cache
from hashlib import sha256
from importlib.metadata import version
from operator import attrgetter
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request, Response, status
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from project.errors import FieldError
from project.web.problems import PROBLEM_MEDIA_TYPE, Problem

ASSETS = Path(fastapi_offline.__file__).parent / "static"
# The release in the URL: a browser may keep a file as long as it likes.
STATIC = f"/docs/static/{version('fastapi-offline')}"
CACHED = {"Cache-Control": "public, max-age=31536000, immutable"}
# ReDoc's sidebar shows Redocly's logo from Redocly's CDN; pointed at a `data:` URL that is no
# image, it hides it.
REDOCLY_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
# The handler's name (`create_hero`): stable, and a good method name for generated clients.
operation_id = attrgetter("name")
_DESCRIPTIONS = {
    status.HTTP_400_BAD_REQUEST: "The request cannot be carried out as sent.",
    status.HTTP_401_UNAUTHORIZED: "Not signed in: a token missing, invalid, expired or revoked.",
    status.HTTP_403_FORBIDDEN: "Authenticated, but not allowed to do this.",
    status.HTTP_404_NOT_FOUND: "No such resource, or it belongs to someone else.",
    status.HTTP_409_CONFLICT: "Conflicts with the current data: a name or email already taken (on"
    " users, also the last active superuser).",
    status.HTTP_410_GONE: "No longer usable: used, expired, or replaced by a newer one.",
    status.HTTP_412_PRECONDITION_FAILED: "`If-Match` does not name the current version (or "
    "`If-None-Match` does).",
    status.HTTP_413_CONTENT_TOO_LARGE: "The request body is over the size limit.",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "The body is not of the media type expected.",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Invalid input; `errors` lists each problem.",
    status.HTTP_429_TOO_MANY_REQUESTS: "Too many attempts; see `Retry-After`.",
    status.HTTP_503_SERVICE_UNAVAILABLE: "Temporarily unavailable; see `Retry-After`.",
}


def described(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


_RETRY_AFTER = {"Retry-After": described("Seconds to wait before trying again.", "integer")}
_BEARER = {"WWW-Authenticate": described("`Bearer`: send an access token.")}
_HEADERS: dict[int, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: _BEARER,
    status.HTTP_429_TOO_MANY_REQUESTS: _RETRY_AFTER,
    status.HTTP_503_SERVICE_UNAVAILABLE: _RETRY_AFTER,
}
_ETAG = {"ETag": described("The version to send back in `If-Match`.")}
# The conditional request headers of reads (they document a 304) and changes (a 412).
_PRECONDITIONS = {
    "304": {
        "If-None-Match": "ETags the client holds (or `*`): when one is current, the answer is "
        "304, no body.",
        "If-Match": "The ETag the client holds (or `*`): when it is no longer current, the "
        "answer is 412.",
    },
    "412": {
        "If-Match": "The ETag the client read (or `*`): when it is no longer current, the "
        "answer is 412 and nothing changes.",
        "If-None-Match": "ETags (or `*`) the change is not for: when one is current, the answer "
        "is 412 and nothing changes.",
    },
}


def problems(*codes: int, say: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses` entries for error statuses, as problems; `say` words them for an operation."""
    return {
        code: {
            "description": (say or {}).get(code, _DESCRIPTIONS[code]),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            **({"headers": _HEADERS[code]} if code in _HEADERS else {}),
        }
        for code in codes
    }


def created(name: str) -> dict[int | str, dict[str, Any]]:
    """The 201 of a create, with links to what can be done next."""
    headers = {**_ETAG, "Location": described(f"The new {name}'s URL.")}
    ops = (f"{verb}_{name}" for verb in ("read", "update", "delete"))
    links = {op: {"operationId": op, "parameters": {"id": "$response.body#/id"}} for op in ops}
    new = {"description": f"The new {name}.", "headers": headers, "links": links}
    return {status.HTTP_201_CREATED: new}


def fetched(name: str) -> dict[int | str, dict[str, Any]]:
    """A read's 200, and the 304 and 412 of its preconditions."""
    cache_control = described("As the 200 said it (RFC 9110 §15.4.5).")
    return {
        status.HTTP_200_OK: {"description": f"The {name}.", "headers": _ETAG},
        status.HTTP_304_NOT_MODIFIED: {
            "description": "Unchanged since the `If-None-Match` tag.",
            "headers": {**_ETAG, "Cache-Control": cache_control},
        },
        **problems(status.HTTP_404_NOT_FOUND, status.HTTP_412_PRECONDITION_FAILED),
    }


def changed(name: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    """A change's 200, and what it may answer besides."""
    return {
        status.HTTP_200_OK: {"description": f"The {name}, changed.", "headers": _ETAG},
        **problems(status.HTTP_404_NOT_FOUND, status.HTTP_412_PRECONDITION_FAILED, *codes),
    }


def deleted() -> dict[int | str, dict[str, Any]]:
    return problems(status.HTTP_404_NOT_FOUND, status.HTTP_412_PRECONDITION_FAILED)


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's, built once, with problems, precondition headers, and what generated clients need
    said: `security: []` (no token), and a query parameter absent rather than null."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = FastAPI.openapi(app)  # kept in `app.openapi_schema`: changed once, here
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, FieldError):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components[model.__name__] = {k: v for k, v in found.items() if k != "$defs"}
    for obsolete in ("HTTPValidationError", "ValidationError"):
        components.pop(obsolete, None)
    for operation in (op for path in schema.get("paths", {}).values() for op in path.values()):
        responses = operation.get("responses", {})
        headers = next((h for c, h in _PRECONDITIONS.items() if c in responses), {})
        for name, text in headers.items():
            parameter = {"name": name, "in": "header", "required": False, **described(text)}
            operation.setdefault("parameters", []).append(parameter)
        operation.setdefault("security", [])
        for parameter in operation.get("parameters", []):
            types = parameter.get("schema", {})
            kinds = [kind for kind in types.get("anyOf", ()) if kind != {"type": "null"}]
            if parameter["in"] == "query" and len(kinds) == 1:
                del types["anyOf"]
                types.update(kinds[0])
    return schema


@cache  # read once, by the first app that serves them
def _files() -> dict[str, bytes]:
    files = {path.name: path.read_bytes() for path in ASSETS.iterdir() if path.is_file()}
    redoc = files["redoc.standalone.js"]
    if redoc.count(REDOCLY_LOGO) != 1:
        raise LookupError("ReDoc's logo URL changed: the page would load it from Redocly")
    files["redoc.standalone.js"] = redoc.replace(REDOCLY_LOGO, b"data:,")
    return files


def _policy(page: str, styles: str = "'self'", workers: str = "'none'") -> str:
    """The page's CSP: files from this origin, and the page's inline scripts by their hash."""
    inline = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    digests = (b64encode(sha256(script.encode()).digest()).decode() for script in inline)
    scripts = "".join(f" 'sha256-{digest}'" for digest in digests)
    return (
        f"default-src 'self'; script-src 'self'{scripts}; style-src {styles}; "
        f"img-src 'self' data:; worker-src {workers}; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc for the app's OpenAPI document (none when it has none)."""
    if (url := app.openapi_url) is None:
        return
    page: dict[str, Any] = {"openapi_url": url, "title": f"{app.title} - docs"}
    swagger_ui = get_swagger_ui_html(
        **page,
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon.png",
        # No badge from the online validator: it would send the document to swagger.io.
        swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
    )
    redoc = get_redoc_html(
        **page,
        redoc_js_url=f"{STATIC}/redoc.standalone.js",
        redoc_favicon_url=f"{STATIC}/favicon.png",
        with_google_fonts=False,
    )
    # Built once: the pages never change while the process runs. ReDoc styles what it renders
    # with inline styles, and searches in a worker it makes from a `blob:` URL.
    swagger_ui_page, redoc_page = bytes(swagger_ui.body).decode(), bytes(redoc.body).decode()
    pages = {
        "/docs": (swagger_ui_page, _policy(swagger_ui_page)),
        "/redoc": (redoc_page, _policy(redoc_page, "'self' 'unsafe-inline'", "blob:")),
    }
    files = _files()

    @app.get("/docs", include_in_schema=False)
    @app.get("/redoc", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        html, policy = pages[request.scope["route"].path]
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})

    @app.get(f"{STATIC}/{{name}}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if (body := files.get(name)) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        return Response(body, media_type=mimetypes.guess_type(name)[0], headers=CACHED)
