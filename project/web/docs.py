"""The OpenAPI document, and /docs and /redoc, their CDN files pinned by hash (Subresource
Integrity): /docs keeps a signed-in token, so a file changed on the CDN must not run there.
A new release's hash: `npm pack swagger-ui-dist@X`; `openssl dgst -sha384 -binary FILE | base64`."""

from operator import attrgetter
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from project.errors import FieldError
from project.web.problems import PROBLEM_MEDIA_TYPE, Problem

CDN = "https://cdn.jsdelivr.net/npm"
SWAGGER_UI_JS = f"{CDN}/swagger-ui-dist@5.35.0/swagger-ui-bundle.js"
SWAGGER_UI_CSS = f"{CDN}/swagger-ui-dist@5.35.0/swagger-ui.css"
REDOC_JS = f"{CDN}/redoc@2.5.4/bundles/redoc.standalone.js"
INTEGRITY = {
    SWAGGER_UI_JS: "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9",
    SWAGGER_UI_CSS: "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I",
    REDOC_JS: "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5",
}
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


def _pinned(response: HTMLResponse) -> str:
    """The page, each file it loads from the CDN checked against its hash."""
    page = bytes(response.body).decode()
    for url, digest in INTEGRITY.items():
        page = page.replace(f'"{url}"', f'"{url}" integrity="{digest}" crossorigin="anonymous"')
    if page.count(f'"{CDN}/') != page.count(" integrity="):
        raise LookupError("a file from the CDN is not pinned")  # FastAPI's page changed
    return page


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc for the app's OpenAPI document (none when it has none)."""
    if (url := app.openapi_url) is None:
        return
    page: dict[str, Any] = {"openapi_url": url, "title": f"{app.title} - docs"}
    swagger_ui = get_swagger_ui_html(
        **page,
        swagger_js_url=SWAGGER_UI_JS,
        swagger_css_url=SWAGGER_UI_CSS,
        swagger_ui_parameters=app.swagger_ui_parameters,
    )
    # No Google fonts: the page's CSP lets no other host serve fonts.
    redoc = get_redoc_html(**page, redoc_js_url=REDOC_JS, with_google_fonts=False)
    # Built once: the pages never change while the process runs.
    pages = {"/docs": _pinned(swagger_ui), "/redoc": _pinned(redoc)}

    @app.get("/docs", include_in_schema=False)
    @app.get("/redoc", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(pages[request.scope["route"].path])
