"""ETags and conditional requests (RFC 9110 §13).

A tag is the row's `version`, plus a digest of the versions of what the representation
embeds (a hero's team and powers, a team's hero count), so it changes whenever the body a
client would receive changes: a strong validator."""

import hashlib

from fastapi import Request, Response, status

from project.errors import PreconditionFailed


def make_etag(version: int, *embedded: object) -> str:
    if not embedded:
        return f'"{version}"'
    digest = hashlib.sha256(repr(embedded).encode()).hexdigest()[:12]
    return f'"{version}-{digest}"'


# What a 200 with a tag says to caches (a private one may keep it, but asks each time) and
# what the 304 that answers its revalidation must repeat (RFC 9110 §15.4.5).
REVALIDATE = "private, no-cache"


def _header(request: Request, name: str) -> str | None:
    """A precondition header; sent on several lines, it is one list (RFC 9110 §5.3)."""
    lines = request.headers.getlist(name)
    return ", ".join(lines) if lines else None


def _names(header: str | None, etag: str, *, weak: bool) -> bool:
    """Whether a precondition header lists `*` or the current tag (a weak comparison
    ignores `W/`); False when there is no header."""
    if header is None:
        return False
    tags = [tag.strip() for tag in header.split(",") if tag.strip()]
    if weak:
        tags = [tag.removeprefix("W/") for tag in tags]
    return "*" in tags or etag in tags


def not_modified(request: Request, etag: str) -> Response | None:
    """A read's preconditions (RFC 9110 §13.2.2): 412 when `If-Match`, if sent, names
    neither `*` nor the current tag (strong comparison); a 304 when `If-None-Match` names it
    (weak comparison); else None."""
    if_match = _header(request, "if-match")
    if if_match is not None and not _names(if_match, etag, weak=False):
        raise PreconditionFailed()
    if _names(_header(request, "if-none-match"), etag, weak=True):
        headers = {"ETag": etag, "Cache-Control": REVALIDATE}
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return None


def require_match(request: Request, etag: str) -> None:
    """412 unless a change's preconditions hold (RFC 9110 §13.2.2): `If-Match`, when sent,
    names `*` or the current tag (strong comparison), and `If-None-Match`, when sent, names
    neither (weak comparison; `If-None-Match: *` on a change of an existing row fails)."""
    if_match = _header(request, "if-match")
    if if_match is not None and not _names(if_match, etag, weak=False):
        raise PreconditionFailed()
    if _names(_header(request, "if-none-match"), etag, weak=True):
        raise PreconditionFailed("`If-None-Match` names the current version.")
