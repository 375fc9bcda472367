"""The OpenAPI document: problems documented on every operation, the headers responses
carry, and what generated clients need said."""

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


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}
_HEADERS: dict[int, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {
        "WWW-Authenticate": {
            "description": "`Bearer`: send an access token.",
            "schema": {"type": "string"},
        }
    },
    status.HTTP_429_TOO_MANY_REQUESTS: _RETRY_AFTER,
    status.HTTP_503_SERVICE_UNAVAILABLE: _RETRY_AFTER,
}


def problems(*codes: int, say: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses, all in the problem+json schema, with
    the headers they carry; `say` words one for this operation."""
    return {
        code: {
            "description": (say or {}).get(code, _DESCRIPTIONS[code]),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            **({"headers": _HEADERS[code]} if code in _HEADERS else {}),
        }
        for code in codes
    }


_ETAG = {
    "ETag": {"description": "The version to send back in `If-Match`.", "schema": {"type": "string"}}
}


def created(name: str) -> dict[int | str, dict[str, Any]]:
    """The 201 of a create: its headers, and OpenAPI links to what can be done next."""
    by_id = {"id": "$response.body#/id"}
    return {
        status.HTTP_201_CREATED: {
            "description": f"The new {name}.",
            "headers": {
                **_ETAG,
                "Location": {"description": f"The new {name}'s URL.", "schema": {"type": "string"}},
            },
            "links": {
                f"{verb}_{name}": {"operationId": f"{verb}_{name}", "parameters": by_id}
                for verb in ("read", "update", "delete")
            },
        }
    }


def fetched(name: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of a read, with its ETag, the 304 that `If-None-Match` can give and the 412
    of a stale `If-Match`."""
    return {
        status.HTTP_200_OK: {"description": f"The {name}.", "headers": _ETAG},
        status.HTTP_304_NOT_MODIFIED: {
            "description": "Unchanged since the `If-None-Match` tag.",
            "headers": {
                **_ETAG,
                "Cache-Control": {
                    "description": "As the 200 said it (RFC 9110 §15.4.5).",
                    "schema": {"type": "string"},
                },
            },
        },
        **problems(status.HTTP_404_NOT_FOUND, status.HTTP_412_PRECONDITION_FAILED),
    }


def changed(name: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    """The 200 of a change, with the new ETag, and what a change may answer besides."""
    return {
        status.HTTP_200_OK: {"description": f"The {name}, changed.", "headers": _ETAG},
        **problems(status.HTTP_404_NOT_FOUND, status.HTTP_412_PRECONDITION_FAILED, *codes),
    }


_IF_MATCH_READ = (
    "If-Match",
    "The ETag the client holds (or `*`): when it is no longer current, the answer is 412.",
)
_IF_NONE_MATCH_READ = (
    "If-None-Match",
    "ETags the client holds (or `*`): when one is current, the answer is 304, no body.",
)
_IF_MATCH_CHANGE = (
    "If-Match",
    "The ETag the client read (or `*`): when it is no longer current, the answer is 412 and "
    "nothing changes.",
)
_IF_NONE_MATCH_CHANGE = (
    "If-None-Match",
    "ETags (or `*`) the change is not for: when one is current, the answer is 412 and "
    "nothing changes.",
)


def document_preconditions(openapi: dict[str, Any]) -> None:
    """Add the conditional request headers to every operation that answers them: reads
    (they document a 304) and changes (they document a 412) take `If-Match` and
    `If-None-Match`, each with what it does there."""
    for path in openapi.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if "304" in responses:
                headers = (_IF_NONE_MATCH_READ, _IF_MATCH_READ)
            elif "412" in responses:
                headers = (_IF_MATCH_CHANGE, _IF_NONE_MATCH_CHANGE)
            else:
                continue
            for header, description in headers:
                operation.setdefault("parameters", []).append(
                    {
                        "name": header,
                        "in": "header",
                        "required": False,
                        "description": description,
                        "schema": {"type": "string"},
                    }
                )


def tidy_operations(openapi: dict[str, Any]) -> None:
    """Say what a generated client needs said: an operation without a security requirement
    needs no token (`security: []`, not silence), and a query parameter is never null (a
    query string cannot carry one), only absent."""
    for path in openapi.get("paths", {}).values():
        for operation in path.values():
            operation.setdefault("security", [])
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                kinds = [kind for kind in schema.get("anyOf", ()) if kind != {"type": "null"}]
                if parameter["in"] == "query" and len(kinds) == 1:
                    del schema["anyOf"]
                    schema.update(kinds[0])


def operation_id(route: APIRoute) -> str:
    """Operation ids are the handler names (`create_hero`): stable, and a client generator
    turns them into good method names."""
    return route.name


def openapi(app: FastAPI) -> dict[str, Any]:
    """The app's document, built once: FastAPI's, with the problem schema in place of its
    validation error schemas and the additions above."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (Problem, FieldError):
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components[model.__name__].pop("$defs", None)
        for obsolete in ("HTTPValidationError", "ValidationError"):
            components.pop(obsolete, None)
        document_preconditions(schema)
        tidy_operations(schema)
        app.openapi_schema = schema
    return app.openapi_schema
