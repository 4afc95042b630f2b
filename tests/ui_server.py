"""Pytest plugin: the dashboard test app as a real uvicorn process on 127.0.0.1, and Chromium.

Browser tests use Debian's chromium (/usr/bin/chromium, `make chromium` installs it) driven by
Playwright for Python; Playwright's own browser download is never used. Without Chromium or
Playwright the browser tests skip with one message, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.bq_emulator import ROOT, _stop, free_port
from tests.ui_app import DB_ENV, KEYS_ENV, POLL_ENV

CHROMIUM = os.environ.get("PIPESTATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
KEYS = {"acme-key-0123456789": "acme", "globex-key-0123456789": "globex"}
READY_TIMEOUT_SECONDS = 30.0


class UIServer(NamedTuple):
    """Where the test app answers and which SQLite file it reads."""

    url: str
    db: Path


def _unavailable(reason: str) -> None:
    """Skip with one message, or fail in CI where the browser tests must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"Chromium browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"Chromium browser tests skipped: {reason} (run `make chromium`)")


def chromium_problem() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed"
    return None


def pytest_report_header(config: pytest.Config) -> str:
    """One line in pytest's header saying whether the browser tests can run here."""
    problem = chromium_problem()
    if problem is None:
        return f"browser tests: Chromium at {CHROMIUM} via Playwright"
    outcome = "fail (CI=true)" if os.environ.get("CI") == "true" else "skip"
    return f"browser tests: {problem} (run `make chromium`): tests {outcome}"


@contextlib.contextmanager
def run_ui_server(db: Path, workdir: Path, *, poll_ms: int = 250) -> Iterator[UIServer]:
    """Start uvicorn with the test app on a free 127.0.0.1 port; always stop it on exit."""
    port = free_port()
    log_path = workdir / "uvicorn.log"
    env = {**os.environ, DB_ENV: str(db), KEYS_ENV: json.dumps(KEYS), POLL_ENV: str(poll_ms)}
    argv = [sys.executable, "-m", "uvicorn", "--factory", "tests.ui_app:create_app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, f"{url}/ui/login", log_path)
        yield UIServer(url, db)
    finally:
        _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    """Poll the login page until the server answers; raise with its log if it dies or hangs."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        # Readiness polling of a child process, not waiting on our own background work.
        time.sleep(0.05)
    raise RuntimeError(f"uvicorn not ready: {log_path.read_text(errors='replace')[-2000:]}")


@pytest.fixture(scope="session")
def dashboard_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A SQLite file with the dashboard history (tests/dashboard_data.py) and its special ids."""
    from persistence import SQLiteStore
    from tests.dashboard_data import dashboard_history
    from tests.test_persistence_parity import load

    history, ids = dashboard_history()
    path = tmp_path_factory.mktemp("ui") / "dashboard.db"
    store = SQLiteStore(path)
    try:
        load(store, history.records)
    finally:
        store.close()
    return path, ids


@pytest.fixture(scope="session")
def ui_server(
    dashboard_db: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UIServer]:
    """The test app on the dashboard history, for the whole session."""
    with run_ui_server(dashboard_db[0], tmp_path_factory.mktemp("uvicorn")) as server:
        yield server


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's) under Playwright, shared by one module's browser tests.

    Module scope, not session: Playwright's sync API keeps an event loop running in this thread
    while it is open, and asyncio.run() in any later test would then fail.
    """
    problem = chromium_problem()
    if problem:
        _unavailable(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


class PageWatch:
    """A browser page that records console errors, page errors and dialogs (alert & co.)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        """Record and dismiss a dialog: any dialog means a script ran that should not have."""
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def rendered(self, timeout_ms: float = 30_000) -> None:
        """Wait until every chart on the page has been drawn."""
        self.page.wait_for_selector("body[data-rendered=true]", timeout=timeout_ms)

    def traces(self) -> dict[str, list[dict[str, Any]]]:
        """For each chart on the page: its traces' names, types and point counts."""
        return dict(
            self.page.evaluate(
                """() => Object.fromEntries(Array.from(
                    document.querySelectorAll('[data-figure]')).map(el => [el.id,
                    el.data.map(t => ({name: t.name || null, type: t.type,
                                       points: (t.y || t.z || []).length}))]))"""
            )
        )


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[PageWatch]:
    """A fresh browser context and page (own cookies), closed after the test."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield PageWatch(context.new_page())
    finally:
        context.close()
