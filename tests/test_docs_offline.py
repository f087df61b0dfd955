"""/docs and /redoc render on a machine without internet: the query service serves Swagger UI
and ReDoc itself, and a real headless Chromium (Debian's `chromium`) runs their JavaScript
with every network request but loopback's refused. The assertions are on the rendered DOM."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from memstream.config import Settings
from memstream.embedded import free_port, wait_port
from memstream.embedder import Embedder
from memstream.query.app import create_service
from memstream.sinks.sqlite import SQLiteStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser() -> str:
    if CHROMIUM is None:
        if os.environ.get("MEMSTREAM_REQUIRE_BROWSER"):  # CI installs it: never skip there
            pytest.fail("MEMSTREAM_REQUIRE_BROWSER is set but chromium is not installed")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
def service_url(tmp_path: Path, embedder: Embedder) -> Iterator[str]:
    port = free_port()
    store = SQLiteStore(tmp_path / "docs.db")
    asyncio.run(store.open())
    app = create_service(Settings.load(data_dir=tmp_path), store=store, embedder=embedder)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_port("127.0.0.1", port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def rendered(url: str, tmp: Path) -> str:
    """The DOM after the page's scripts ran, from a headless Chromium that may reach
    loopback only (a CDN reference would leave the page empty)."""
    done = subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp / 'chromium'}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.servers
def test_swagger_ui_renders_the_routes_offline(service_url: str, tmp_path: Path) -> None:
    page = httpx.get(f"{service_url}/docs").text
    assert "cdn." not in page and "/static-offline-docs/swagger-ui-bundle.js" in page
    dom = rendered(f"{service_url}/docs", tmp_path)
    assert 'class="swagger-ui"' in dom
    for route in (
        "/v1/retrieve",
        "/v1/messages",
        "/v1/chat",
        "/v1/users/{owner_id}/{user_id}/memories",
    ):
        assert f'data-path="{route}"' in dom, f"{route} not rendered"


@pytest.mark.servers
def test_redoc_renders_offline(service_url: str, tmp_path: Path) -> None:
    page = httpx.get(f"{service_url}/redoc").text
    assert "cdn." not in page and "fonts.googleapis" not in page
    dom = rendered(f"{service_url}/redoc", tmp_path)
    assert "memstream query service" in dom and "/v1/retrieve" in dom
