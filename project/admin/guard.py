"""Cross-site request protection and browser policy for the admin, as pure ASGI middleware.

Forgery is refused on request headers that browsers set and pages cannot, the scheme of Go's
`net/http.CrossOriginProtection` (and of tower-http's and ASP.NET Core's): `Sec-Fetch-Site`
where the browser sends it (every major browser since 2023), otherwise `Origin` against
`Host`. Unlike a token it needs no template or script changes in sqladmin, and it covers
every form, the script-driven DELETE and the login form alike. The session cookie is also
`SameSite=Strict`, so a cross-site request does not even carry it.
"""

from urllib.parse import urlsplit

from fastapi import status
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from project.web.problems import problem_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE = "Cross-site requests to the admin are refused."

# Everything the admin loads comes from sqladmin's own static files; Tabler and select2 set
# inline styles, but no script runs inline (sqladmin's one inline script is for flash
# messages, which these views never send).
ADMIN_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def is_cross_site(method: str, headers: Headers) -> bool:
    site = headers.get("sec-fetch-site")
    if site is not None:
        if site in ("same-origin", "none"):  # "none": typed in, or a bookmark
            return False
        # A link from elsewhere may open an admin page, and nothing more: no form posts,
        # and no reading admin pages through CORS from the API's allowed origins.
        return not (method in SAFE_METHODS and headers.get("sec-fetch-mode") == "navigate")
    if method in SAFE_METHODS:
        return False
    origin = headers.get("origin")
    if origin is None:
        return False  # not sent by a browser, so there is no ambient cookie to abuse
    return urlsplit(origin).netloc != headers.get("host")  # "null" never matches


class AdminGuard:
    """Refuses cross-site requests with 403, and sets the admin's own security headers;
    the service's middleware adds its defaults only where a response has none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = ADMIN_CSP
                # Unlike "no-referrer", this lets browsers send `Origin` on the admin's own
                # posts (the fallback check above) and sqladmin keep list filters on delete.
                headers["Referrer-Policy"] = "same-origin"
            await send(message)

        if is_cross_site(scope["method"], Headers(scope=scope)):
            response = problem_response(status.HTTP_403_FORBIDDEN, CROSS_SITE)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
