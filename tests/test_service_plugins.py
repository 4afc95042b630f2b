"""Tests for pipestate.service.plugins: `pipestate serve` with the dashboard and the watcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service_support import ROOT_KEY, make_config_dir, run_server

pytest.importorskip("fastapi")


def test_serve_mounts_the_dashboard_behind_real_org_keys(tmp_path: Path) -> None:
    """The served /ui signs in with a key the API issued, shows only that org's runs, refuses a
    revoked key and ends that key's open session, and the watcher runs beside the API."""
    store = f"sqlite:{tmp_path / 'serve.db'}"
    with run_server(tmp_path, store=store, config_dir=make_config_dir(tmp_path)) as server:
        with server.client() as api:
            root = {"X-CA-Root-Key": ROOT_KEY}
            assert api.post("/api/v1/admin/bootstrap", headers=root, json={}).status_code == 200
            keys = {
                org: api.post("/api/v1/admin/keys", headers=root, json={"org_slug": org}).json()
                for org in ("org_a", "org_b")
            }
            for org in keys:
                run = api.post(
                    f"/api/v1/pipelines/run/{org}/test/success/test_success?wait=true",
                    headers={"X-API-Key": keys[org]["api_key"]},
                    json={},
                )
                assert run.json()["state"] == "COMPLETED"
        browser_b = server.client()
        with server.client() as browser:
            assert browser.get("/ui/runs").status_code in (303, 307)  # not signed in
            login = browser.post("/ui/login", data={"api_key": keys["org_a"]["api_key"]})
            assert login.status_code in (200, 303)
            page = browser.get("/ui/runs")
            assert page.status_code == 200
            assert "org_a" in page.text
            assert "org_b" not in page.text
        browser_b.post("/ui/login", data={"api_key": keys["org_b"]["api_key"]})
        assert browser_b.get("/ui/runs").status_code == 200  # org_b's open session
        with server.client() as api:
            revoked = api.delete(
                f"/api/v1/admin/keys/{keys['org_b']['key_id']}", headers={"X-CA-Root-Key": ROOT_KEY}
            )
            assert revoked.status_code == 200
        # The open session of the revoked key ends at once (this replica updated its key cache).
        assert browser_b.get("/ui/runs").status_code in (303, 307)
        browser_b.close()
        with server.client() as browser:
            refused = browser.post("/ui/login", data={"api_key": keys["org_b"]["api_key"]})
            assert "org_b" not in refused.text
            assert browser.get("/ui/runs").status_code in (303, 307)
        assert server.stop() == 0


def test_fastapi_http_telemetry_only_with_otel() -> None:
    """FastAPI's own per-request telemetry is off by default and on when --otel asks for it."""
    from fastapi import FastAPI

    from pipestate.service.app import create_app
    from pipestate.service.plugins import service_plugins

    if not hasattr(FastAPI(), "_native_telemetry"):
        pytest.skip("this FastAPI has no native telemetry")
    plain = create_app(plugins=service_plugins(ui=False, watch=False))
    traced = create_app(plugins=service_plugins(ui=False, watch=False, otel=True))
    assert not plain._native_telemetry.config["tracing"]
    assert not plain._native_telemetry.enabled()
    assert traced._native_telemetry.config["tracing"]
