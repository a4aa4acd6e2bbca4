"""/docs (Swagger UI) and /redoc load nothing from another host: their scripts and styles are served
by the app itself, from an installed package, so they work without internet access."""

from __future__ import annotations

import re

import pytest

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
URL_IN_SCRIPT = re.compile(r"""(?:url|href|src)\s*:\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_use_only_the_apps_own_assets(sqlite_client, page):
    response = sqlite_client.get(page)
    assert response.status_code == 200, response.text
    html = response.text
    assert not re.search(r"https?://|//cdn|fonts\.googleapis", html), html
    assets = ASSET.findall(html) + URL_IN_SCRIPT.findall(html)
    assert any(asset.endswith(".js") for asset in assets), html
    for asset in assets:
        assert asset.startswith("/"), asset
        fetched = sqlite_client.get(asset)
        assert fetched.status_code == 200, asset
        assert fetched.content, asset
