"""/docs and /redoc, their files pinned to a release and checked against a hash (Subresource
Integrity): /docs keeps a signed-in token in the page's storage, so a file changed on the CDN
must not run there. A new release's hash: `npm pack swagger-ui-dist@X`, then
`openssl dgst -sha384 -binary FILE | base64`."""

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

CDN = "https://cdn.jsdelivr.net/npm"
SWAGGER_UI_JS = f"{CDN}/swagger-ui-dist@5.35.0/swagger-ui-bundle.js"
SWAGGER_UI_CSS = f"{CDN}/swagger-ui-dist@5.35.0/swagger-ui.css"
REDOC_JS = f"{CDN}/redoc@2.5.4/bundles/redoc.standalone.js"
INTEGRITY = {
    SWAGGER_UI_JS: "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9",
    SWAGGER_UI_CSS: "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I",
    REDOC_JS: "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5",
}


def _pinned(response: HTMLResponse, *urls: str) -> str:
    page = bytes(response.body).decode()
    for url in urls:
        tags = [tag for tag in (f'src="{url}"', f'href="{url}"') if tag in page]
        if not tags:
            raise LookupError(f"{url} is not on the page")  # FastAPI's page changed
        checked = f'{tags[0]} integrity="{INTEGRITY[url]}" crossorigin="anonymous"'
        page = page.replace(tags[0], checked, 1)
    return page


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc for the app's OpenAPI document (none when it has none)."""
    if app.openapi_url is None:
        return
    title = f"{app.title} - docs"
    # Built once: the pages never change while the process runs.
    swagger_ui = _pinned(
        get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=title,
            swagger_js_url=SWAGGER_UI_JS,
            swagger_css_url=SWAGGER_UI_CSS,
            swagger_ui_parameters=app.swagger_ui_parameters,
        ),
        SWAGGER_UI_JS,
        SWAGGER_UI_CSS,
    )
    redoc = _pinned(  # no Google fonts: the page's CSP lets no other host serve fonts
        get_redoc_html(
            openapi_url=app.openapi_url, title=title, redoc_js_url=REDOC_JS, with_google_fonts=False
        ),
        REDOC_JS,
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(swagger_ui)

    @app.get("/redoc", include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc)
