"""``/docs`` that works without a network: the Swagger UI's script and style served by the server itself.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN, so on a machine without internet access (the
usual place for a model server behind a firewall, or a laptop on a train) it is a blank page. Here the
same page loads the assets from a package installed with ``enctune[serve]``: ``fastapi-offline``, whose
``static/`` folder holds Swagger UI 5 (the first major version that reads OpenAPI 3.1, which FastAPI
writes; the older ``swagger-ui-bundle`` package holds 4.15 and renders "Unable to render this
definition"). Only those files are used, mounted at ``/docs-assets``; the paths carry the app's root
path, so the page works behind a proxy that serves the app under a prefix too.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def add_offline_docs(app: FastAPI) -> None:
    """``GET /docs`` and the assets it loads, for an app created with ``docs_url=None``."""
    from importlib.resources import files

    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title}: API",
                                   swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS}/favicon.png")
