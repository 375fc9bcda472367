"""Cross-site requests are refused on headers browsers set and pages cannot, as Go's
`CrossOriginProtection` does: unlike a token, this needs no change to sqladmin's pages."""

from urllib.parse import urlsplit

from fastapi import status
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from project.web.problems import problem_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE = "Cross-site requests to the admin are refused."
# Only sqladmin's own files load (Tabler and select2 set inline styles; no inline script runs).
# "same-origin" keeps `Origin` on the admin's own posts (see below), and list filters on delete.
ADMIN_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ADMIN_HEADERS = {"Content-Security-Policy": ADMIN_CSP, "Referrer-Policy": "same-origin"}


def is_cross_site(method: str, headers: Headers) -> bool:
    site, origin = headers.get("sec-fetch-site"), headers.get("origin")
    if site is not None:
        # "none": typed in, or a bookmark. A link from elsewhere may open an admin page, and
        # nothing more: no form posts, no reading pages through CORS from the API's origins.
        navigation = method in SAFE_METHODS and headers.get("sec-fetch-mode") == "navigate"
        return site not in ("same-origin", "none") and not navigation
    if method in SAFE_METHODS or origin is None:  # no `Origin`: no browser, no ambient cookie
        return False
    return urlsplit(origin).netloc != headers.get("host")  # "null" never matches


class AdminGuard:
    """Refuses cross-site requests, and sets headers the service's own defaults then leave be."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(ADMIN_HEADERS)
            await send(message)

        app = self.app
        if is_cross_site(scope["method"], Headers(scope=scope)):
            app = problem_response(status.HTTP_403_FORBIDDEN, CROSS_SITE)
        await app(scope, receive, send_with_headers)
