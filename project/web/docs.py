"""/docs and /redoc: FastAPI's own pages, their scripts and styles pinned to one release and
checked by the browser against a hash (Subresource Integrity). /docs keeps a signed-in
token in the page's storage, so a file changed on the CDN must not run there.

To move to a newer release, take the file from npm and hash it:
`npm pack swagger-ui-dist@X`, then `openssl dgst -sha384 -binary FILE | base64`.
"""

from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse


@dataclass(frozen=True)
class Asset:
    url: str
    integrity: str

    def pin(self, page: str) -> str:
        """The page, with this asset's tag checked against its hash."""
        for attribute in ("src", "href"):
            tag = f'{attribute}="{self.url}"'
            if tag in page:
                checked = f'{tag} integrity="{self.integrity}" crossorigin="anonymous"'
                return page.replace(tag, checked, 1)
        raise LookupError(f"{self.url} is not on the page")  # FastAPI's page changed


CDN = "https://cdn.jsdelivr.net/npm"
SWAGGER_UI_JS = Asset(
    f"{CDN}/swagger-ui-dist@5.35.0/swagger-ui-bundle.js",
    "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9",
)
SWAGGER_UI_CSS = Asset(
    f"{CDN}/swagger-ui-dist@5.35.0/swagger-ui.css",
    "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I",
)
REDOC_JS = Asset(
    f"{CDN}/redoc@2.5.4/bundles/redoc.standalone.js",
    "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5",
)


def _page(response: HTMLResponse, *assets: Asset) -> str:
    page = bytes(response.body).decode()
    for asset in assets:
        page = asset.pin(page)
    return page


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc for the app's OpenAPI document (none when it has none)."""
    if app.openapi_url is None:
        return
    title = f"{app.title} - docs"
    # Built once: the pages never change while the process runs.
    swagger_ui = _page(
        get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=title,
            swagger_js_url=SWAGGER_UI_JS.url,
            swagger_css_url=SWAGGER_UI_CSS.url,
            swagger_ui_parameters=app.swagger_ui_parameters,
        ),
        SWAGGER_UI_JS,
        SWAGGER_UI_CSS,
    )
    redoc = _page(
        get_redoc_html(
            openapi_url=app.openapi_url,
            title=title,
            redoc_js_url=REDOC_JS.url,
            with_google_fonts=False,  # the page's CSP lets no other host serve fonts
        ),
        REDOC_JS,
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(swagger_ui)

    @app.get("/redoc", include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc)
