"""/docs renders with no network: the page names only the server's own assets, and each of them loads."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from enctune.serve.docs import add_offline_docs


def _app() -> FastAPI:
    app = FastAPI(title="t", docs_url=None, redoc_url=None)
    add_offline_docs(app)

    @app.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    return app


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"(?:href|src)=\"([^\"]+)\"", html) + re.findall(r"url: '([^']+)'", html)


def test_the_page_loads_only_from_the_server_itself():
    client = TestClient(_app())
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    urls = _asset_urls(page.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # nothing from a CDN
    assert "http://" not in page.text and "https://" not in page.text
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) > 100, url
    assert client.get("/docs-assets/swagger-ui-bundle.js").headers["content-type"].startswith(
        ("application/javascript", "text/javascript"))
    spec = client.get("/openapi.json").json()
    assert "/ping" in spec["paths"]
    # FastAPI writes OpenAPI 3.1, which Swagger UI reads from major version 5 on (4.x renders an error page)
    major = int(spec["openapi"].split(".")[1])
    bundle = client.get("/docs-assets/swagger-ui-bundle.js").text
    ui = re.search(r'PACKAGE_VERSION:"(\d+)\.', bundle)
    assert ui and (major < 1 or int(ui.group(1)) >= 5), ui


def test_behind_a_prefix_the_page_names_the_prefixed_paths():
    client = TestClient(_app(), root_path="/api")
    page = client.get("/docs")
    assert page.status_code == 200
    assert all(u.startswith("/api/") for u in _asset_urls(page.text)), _asset_urls(page.text)


def test_the_assets_folder_does_not_list_or_leave_its_folder():
    client = TestClient(_app())
    assert client.get("/docs-assets/").status_code == 404
    assert client.get("/docs-assets/../../../etc/passwd").status_code == 404
