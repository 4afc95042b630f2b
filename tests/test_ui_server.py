"""The browser-test harness (tests/ui_server.py) reports why it cannot run."""

from __future__ import annotations

import pytest


class TestBrowserHarness:
    """The browser tests say why they cannot run: skip locally, fail in CI."""

    def test_missing_chromium_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A missing executable is reported with its path."""
        from tests import ui_server

        monkeypatch.setattr(ui_server, "CHROMIUM", "/nonexistent/chromium")
        assert ui_server.chromium_problem() == "no Chromium at /nonexistent/chromium"

    def test_ci_fails_instead_of_skipping(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With CI=true an unavailable browser is a failure, locally a skip."""
        from tests import ui_server

        monkeypatch.setenv("CI", "true")
        with pytest.raises(pytest.fail.Exception, match="cannot run in CI"):
            ui_server._unavailable("no Chromium")
        monkeypatch.setenv("CI", "false")
        with pytest.raises(pytest.skip.Exception, match="make chromium"):
            ui_server._unavailable("no Chromium")
