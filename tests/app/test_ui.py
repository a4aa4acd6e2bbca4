"""The web page's files (no browser): no inline scripts, styles or handlers, nothing from other origins,
and the Content-Security-Policy header on every /ui answer; / redirects to /ui/; /docs is untouched."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from facever.app.core.config import Settings
from facever.app.main import create_app
from facever.app.webui import UI_DIR

UI_FILES = sorted(path.name for path in UI_DIR.iterdir() if path.is_file())


@pytest.fixture(scope="module")
def client(pipeline, tmp_path_factory):
    settings = Settings(auth="disabled", database_url=f"sqlite:///{tmp_path_factory.mktemp('ui') / 'ui.db'}")
    with TestClient(create_app(settings, pipeline)) as test_client:
        yield test_client


def test_the_page_is_three_static_files():
    assert UI_FILES == ["app.css", "app.js", "index.html"]


def test_the_html_has_no_inline_script_style_or_handler():
    html = (UI_DIR / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I)
    assert scripts and all('src="' in attributes and not body.strip() for attributes, body in scripts)
    assert not re.search(r"<style\b", html, re.I)
    assert not re.search(r"\sstyle\s*=", html, re.I)
    assert not re.search(r"\son[a-z]+\s*=", html, re.I)
    assert "javascript:" not in html.lower()


@pytest.mark.parametrize("name", UI_FILES)
def test_no_file_refers_to_another_origin(name):
    text = (UI_DIR / name).read_text()
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
    assert "@import" not in text


def test_the_script_builds_no_html_from_text():
    script = (UI_DIR / "app.js").read_text()
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert unsafe not in script, unsafe
    assert "localStorage" not in script  # the API key lives in sessionStorage only


def test_root_redirects_to_the_page(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/ui/"


@pytest.mark.parametrize("path", ["/ui/", "/ui/index.html", "/ui/app.js", "/ui/app.css", "/ui/missing.js"])
def test_every_ui_answer_has_the_strict_policy(client, path):
    response = client.get(path)
    assert response.status_code == (404 if "missing" in path else 200)
    policy = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_page_is_served(client):
    response = client.get("/ui/")
    assert response.headers["content-type"].startswith("text/html")
    assert 'src="app.js"' in response.text


def test_docs_keep_working_without_the_ui_policy(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers
