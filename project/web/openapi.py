"""The OpenAPI document: problems, headers, and what generated clients need said."""

from typing import Any

from fastapi import FastAPI, status
from fastapi.routing import APIRoute

from project.errors import FieldError
from project.web.problems import PROBLEM_MEDIA_TYPE, Problem

_DESCRIPTIONS = {
    status.HTTP_400_BAD_REQUEST: "The request cannot be carried out as sent.",
    status.HTTP_401_UNAUTHORIZED: "Not signed in: a token missing, invalid, expired or revoked.",
    status.HTTP_403_FORBIDDEN: "Authenticated, but not allowed to do this.",
    status.HTTP_404_NOT_FOUND: "No such resource, or it belongs to someone else.",
    status.HTTP_409_CONFLICT: (
        "Conflicts with the current data: a name or email already taken (on users, also the"
        " last active superuser)."
    ),
    status.HTTP_412_PRECONDITION_FAILED: (
        "`If-Match` does not name the current version (or `If-None-Match` does)."
    ),
    status.HTTP_413_CONTENT_TOO_LARGE: "The request body is over the size limit.",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "The body is not of the media type expected.",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Invalid input; `errors` lists each problem.",
    status.HTTP_429_TOO_MANY_REQUESTS: "Too many attempts; see `Retry-After`.",
    status.HTTP_503_SERVICE_UNAVAILABLE: "Temporarily unavailable; see `Retry-After`.",
}


def _described(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


_RETRY_AFTER = {"Retry-After": _described("Seconds to wait before trying again.", "integer")}
_HEADERS: dict[int, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {
        "WWW-Authenticate": _described("`Bearer`: send an access token.")
    },
    status.HTTP_429_TOO_MANY_REQUESTS: _RETRY_AFTER,
    status.HTTP_503_SERVICE_UNAVAILABLE: _RETRY_AFTER,
}
_ETAG = {"ETag": _described("The version to send back in `If-Match`.")}
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
    by_id = {"id": "$response.body#/id"}
    return {
        status.HTTP_201_CREATED: {
            "description": f"The new {name}.",
            "headers": {**_ETAG, "Location": _described(f"The new {name}'s URL.")},
            "links": {
                f"{verb}_{name}": {"operationId": f"{verb}_{name}", "parameters": by_id}
                for verb in ("read", "update", "delete")
            },
        }
    }


def fetched(name: str) -> dict[int | str, dict[str, Any]]:
    """A read's 200, and the 304 and 412 of its preconditions."""
    cache_control = _described("As the 200 said it (RFC 9110 §15.4.5).")
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


def operation_id(route: APIRoute) -> str:
    """The handler's name (`create_hero`): stable, and a good method name for generated clients."""
    return route.name


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, built once, with problems for its validation errors, precondition
    headers, and what generated clients need said: `security: []` (no token) rather than
    silence, and a query parameter that is absent rather than null (a query cannot carry one)."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
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
                parameter = {"name": name, "in": "header", "required": False, **_described(text)}
                operation.setdefault("parameters", []).append(parameter)
            operation.setdefault("security", [])
            for parameter in operation.get("parameters", []):
                types = parameter.get("schema", {})
                kinds = [kind for kind in types.get("anyOf", ()) if kind != {"type": "null"}]
                if parameter["in"] == "query" and len(kinds) == 1:
                    del types["anyOf"]
                    types.update(kinds[0])
        app.openapi_schema = schema
    return app.openapi_schema
