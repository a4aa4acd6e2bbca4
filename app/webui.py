"""The web page at /ui/: static files from the package (facever/app/ui), with a strict CSP.

Plain HTML, CSS and JavaScript, no build step and nothing fetched from elsewhere; the page calls the
service's own /v1 API. The policy forbids inline scripts, inline styles and every other origin."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

UI_DIR = Path(__file__).parent / "ui"
UI_PATH = "/ui"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


class UIFiles(StaticFiles):
    """StaticFiles whose every answer (404s too) carries SECURITY_HEADERS."""

    async def get_response(self, path: str, scope: Scope):
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:  # 404, 405: the error envelope, with the same headers
            headers = {**(exc.headers or {}), **SECURITY_HEADERS}
            raise HTTPException(exc.status_code, exc.detail, headers) from None
        response.headers.update(SECURITY_HEADERS)
        return response


def install_ui(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(UI_PATH + "/", status_code=307)

    app.mount(UI_PATH, UIFiles(directory=UI_DIR, html=True), name="ui")
