"""The HTTP API against a real `pipestate serve` process: the seed's curl scenarios, runs,
cancellation, admission, health and metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipestate.service.keys import parse_key_id
from tests.service_support import (
    ROOT_KEY,
    Server,
    create_key,
    sqlite_rows,
)

CURL = shutil.which("curl")


@pytest.fixture
def workdir(service_workdir: Path) -> Path:
    """The shared server's directory."""
    return service_workdir


@pytest.fixture(scope="module")
def server(service_server: Server) -> Server:
    """The shared server."""
    return service_server


@pytest.fixture(scope="module")
def org_key(server: Server) -> str:
    """An API key of test_org."""
    return str(create_key(server, "test_org")["api_key"])


def _curl(*args: str) -> tuple[int, dict[str, Any]]:
    """Run curl as the seed does; return (HTTP status, JSON body)."""
    assert CURL, "curl is required (installed by .ci/run)"
    out = subprocess.run(
        [CURL, "-sS", "-w", "\n%{http_code}", *args], capture_output=True, check=True, timeout=60
    ).stdout.decode()
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


def _chains(db: Path, run_id: str) -> dict[tuple[str, str], list[str]]:
    """Every entity's state chain of one run, from the stored transitions."""
    rows = sqlite_rows(
        db,
        "SELECT entity_type, entity_name, from_state, to_state FROM org_meta_state_transitions "
        "WHERE pipeline_logging_id = ? ORDER BY transition_time, rowid",
        (run_id,),
    )
    chains: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        chain = chains.setdefault((row["entity_type"], row["entity_name"]), [row["from_state"]])
        assert chain[-1] == row["from_state"], f"broken chain for {row}"
        chain.append(row["to_state"])
    return chains


def _flush(server: Server, key: str, org: str = "test_org") -> None:
    """A read makes the server flush its pending rows (read-your-writes on one replica)."""
    with server.client() as client:
        assert client.get(f"/api/v1/runs/{org}", headers={"X-API-Key": key}).status_code == 200


class TestSeedScenarios:
    """The seed's three manual tests, through real curl, checked against the stored rows."""

    def test_bootstrap_with_root_key_is_idempotent(self, server: Server) -> None:
        """The seed's bootstrap curl creates the tables once, then reports nothing to do."""
        args = [
            "-X",
            "POST",
            f"{server.url}/api/v1/admin/bootstrap",
            "-H",
            f"X-CA-Root-Key: {ROOT_KEY}",
            "-H",
            "Content-Type: application/json",
            "-d",
            "{}",
        ]
        status, _first = _curl(*args)
        assert status == 200
        status, second = _curl(*args)
        assert status == 200
        assert second["changed"] is False
        assert set(second["existing"]) >= {"org_meta_state_transitions", "org_api_keys"}

    def test_success_timeout_and_validation_scenarios(
        self, server: Server, org_key: str, workdir: Path
    ) -> None:
        """Success, the seed's 6 s timeout and an invalid pipeline store exactly the seed's
        transitions."""
        headers = ["-H", f"X-API-Key: {org_key}", "-H", "Content-Type: application/json"]
        # The timeout scenario takes the seed's 6 s: start it first, check it last.
        status, timeout_run = _curl(
            "-X", "POST", f"{server.url}/api/v1/pipelines/run/test_org/test/timeout/test_timeout",
            *headers, "-d", "{}",
        )  # fmt: skip
        assert status == 202
        status, success = _curl(
            "-X", "POST", f"{server.url}/api/v1/pipelines/run/test_org/gcp/cost/billing?wait=true",
            *headers, "-d", '{"date": "2025-12-01"}',
        )  # fmt: skip
        assert (status, success["state"]) == (200, "COMPLETED")
        status, invalid = _curl(
            "-X", "POST", f"{server.url}/api/v1/pipelines/run/test_org/invalid/domain/pipeline",
            *headers, "-d", "{}",
        )  # fmt: skip
        assert status == 422
        assert invalid["error_type"] == "VALIDATION_ERROR"
        assert "<configs>/invalid/domain/pipeline.yml" in invalid["detail"]
        assert str(workdir) not in invalid["detail"]  # the server's paths stay private
        # The seed's curl for a status read, then a bounded long-poll until the run ends.
        status, timed_out = _curl(
            f"{server.url}{timeout_run['status_url']}?wait=true", "-H", f"X-API-Key: {org_key}"
        )
        assert (status, timed_out["state"]) == (200, "TIMEOUT")
        _flush(server, org_key)
        db = workdir / "audit.db"
        chains = _chains(db, success["pipeline_logging_id"])
        assert chains[("PIPELINE", "billing")] == ["PENDING", "RUNNING", "COMPLETED"]
        steps = {name for kind, name in chains if kind == "STEP"}
        assert steps == {"extract_billing", "transform_costs", "load_costs"}
        assert all(
            c == ["PENDING", "RUNNING", "COMPLETED"] for (k, _), c in chains.items() if k == "STEP"
        )
        assert _chains(db, invalid["pipeline_logging_id"]) == {
            ("PIPELINE", "invalid/domain/pipeline"): ["PENDING", "RUNNING", "FAILED"]
        }
        failed = sqlite_rows(
            db,
            "SELECT error_type FROM org_meta_state_transitions "
            "WHERE pipeline_logging_id = ? AND to_state = 'FAILED'",
            (invalid["pipeline_logging_id"],),
        )
        assert failed == [{"error_type": "VALIDATION_ERROR"}]
        assert _chains(db, timeout_run["pipeline_logging_id"]) == {
            ("PIPELINE", "test-timeout"): ["PENDING", "RUNNING", "TIMEOUT"],
            ("STEP", "slow_step"): ["PENDING", "RUNNING", "FAILED"],
        }

    def test_params_are_recorded_in_the_first_transition(
        self, server: Server, org_key: str, workdir: Path
    ) -> None:
        """The request body reaches the run and lands in PENDING -> RUNNING's metadata."""
        with server.client() as client:
            run = client.post(
                "/api/v1/pipelines/run/test_org/gcp/cost/billing?wait=true",
                json={"date": "2025-12-01"},
                headers={"X-API-Key": org_key},
            ).json()
        _flush(server, org_key)
        rows = sqlite_rows(
            workdir / "audit.db",
            "SELECT metadata FROM org_meta_state_transitions WHERE pipeline_logging_id = ? "
            "AND entity_type = 'PIPELINE' AND to_state = 'RUNNING'",
            (run["pipeline_logging_id"],),
        )
        assert json.loads(rows[0]["metadata"])["params"] == {"date": "2025-12-01"}

    def test_bad_params_are_a_422_naming_the_parameter_and_a_stored_failure(
        self, server: Server, org_key: str
    ) -> None:
        """A wrong-typed parameter answers 422 naming it, with the id of the failed run."""
        with server.client() as client:
            response = client.post(
                "/api/v1/pipelines/run/test_org/gcp/cost/billing",
                json={"date": "yesterday"},
                headers={"X-API-Key": org_key},
            )
            assert response.status_code == 422
            problem = response.json()
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "params.date" in problem["detail"]
            stored = client.get(problem["status_url"], headers={"X-API-Key": org_key}).json()
        assert (stored["state"], stored["pipeline_id"]) == ("FAILED", "gcp/cost/billing")


class TestRuns:
    """Reading, listing and cancelling runs."""

    def test_get_run_has_state_steps_and_timeline(self, server: Server, org_key: str) -> None:
        """GET a finished run returns its final state, step states and stored timeline."""
        headers = {"X-API-Key": org_key}
        with server.client() as client:
            run = client.post(
                "/api/v1/pipelines/run/test_org/test/success/test_success?wait=true",
                headers=headers,
            ).json()
            detail = client.get(run["status_url"], headers=headers).json()
        assert detail["state"] == "COMPLETED"
        assert set(detail["steps"].values()) == {"COMPLETED"}
        assert len(detail["timeline"]) == 8
        assert detail["timeline"][0]["to_state"] == "RUNNING"

    def test_list_runs_filters_by_state_and_pipeline(self, server: Server, org_key: str) -> None:
        """The runs listing returns this org's runs, filtered by state and pipeline id."""
        headers = {"X-API-Key": org_key}
        with server.client() as client:
            client.post(
                "/api/v1/pipelines/run/test_org/test/success/test_success?wait=true",
                headers=headers,
            )
            done = client.get(
                "/api/v1/runs/test_org", params={"state": "COMPLETED"}, headers=headers
            ).json()["runs"]
            named = client.get(
                "/api/v1/runs/test_org", params={"pipeline_id": "test-success"}, headers=headers
            ).json()["runs"]
        assert done
        assert all(r["state"] == "COMPLETED" for r in done)
        assert named
        assert all(r["pipeline_id"] == "test-success" for r in named)

    def test_cancel_ends_every_entity_failed_and_marks_the_rows(
        self, server: Server, org_key: str, workdir: Path
    ) -> None:
        """Cancelling a live run ends its running step and the pipeline FAILED as a cancellation."""
        headers = {"X-API-Key": org_key}
        with server.client() as client:
            run = client.post("/api/v1/pipelines/run/test_org/test/slow/slow", headers=headers)
            run_id = run.json()["pipeline_logging_id"]
            cancel = client.post(f"/api/v1/runs/test_org/{run_id}/cancel", headers=headers)
            again = client.post(f"/api/v1/runs/test_org/{run_id}/cancel", headers=headers)
        assert cancel.status_code == 200
        assert cancel.json() == {
            "pipeline_logging_id": run_id,
            "cancelled": True,
            "state": "FAILED",
        }
        assert again.status_code == 409
        _flush(server, org_key)
        rows = sqlite_rows(
            workdir / "audit.db",
            "SELECT entity_name, to_state, reason, metadata FROM org_meta_state_transitions "
            "WHERE pipeline_logging_id = ? AND to_state = 'FAILED'",
            (run_id,),
        )
        assert {"slow", "wait"} <= {r["entity_name"] for r in rows}
        assert _chains(workdir / "audit.db", run_id)[("PIPELINE", "slow")][-1] == "FAILED"
        for row in rows:  # every cancelled row says so, by which key (its id, never the key)
            meta = json.loads(row["metadata"])
            assert meta["cancelled"] is True
            assert meta["cancel_source"] == "api"
            assert meta["cancelled_by"] == parse_key_id(org_key)
            assert row["reason"].startswith("Cancelled")
            assert org_key not in row["metadata"]

    def test_queries_answer_for_the_org(self, server: Server, org_key: str) -> None:
        """Each analysis query runs for the org; a bad parameter is a 422 problem."""
        headers = {"X-API-Key": org_key}
        with server.client() as client:
            for name in ("stuck", "failures", "steps", "retries", "runs"):
                response = client.get(f"/api/v1/queries/test_org/{name}", headers=headers)
                assert response.status_code == 200, response.text
                assert response.json()["org_slug"] == "test_org"
            bad = client.get(
                "/api/v1/queries/test_org/failures", params={"days": "x"}, headers=headers
            )
        assert bad.status_code == 422
        assert "days" in bad.json()["detail"]


class TestAdmission:
    """Bounded admission: per-org and per-process limits answer 429 with Retry-After."""

    def test_org_and_process_limits(self, server: Server) -> None:
        """The third run of one org and the fifth of the process are refused with 429."""
        keys = {org: create_key(server, org)["api_key"] for org in ("org_c", "org_d", "org_e")}
        started: list[tuple[str, str]] = []
        with server.client() as client:

            def start(org: str) -> httpx.Response:
                return client.post(
                    f"/api/v1/pipelines/run/{org}/test/slow/slow",
                    headers={"X-API-Key": keys[org]},
                )

            try:
                for org in ("org_c", "org_c"):
                    response = start(org)
                    assert response.status_code == 202
                    started.append((org, response.json()["pipeline_logging_id"]))
                over_org = start("org_c")
                for org in ("org_d", "org_d"):
                    response = start(org)
                    assert response.status_code == 202
                    started.append((org, response.json()["pipeline_logging_id"]))
                over_process = start("org_e")
                metrics = client.get("/metrics").text
            finally:
                for org, run_id in started:
                    client.post(
                        f"/api/v1/runs/{org}/{run_id}/cancel", headers={"X-API-Key": keys[org]}
                    )
        assert over_org.status_code == 429
        assert over_org.headers["retry-after"] == "1"
        assert "per org" in over_org.json()["detail"]
        assert over_process.status_code == 429
        assert "limit 4" in over_process.json()["detail"]
        assert 'pipestate_run_rejections_total{reason="org_limit"} 1.0' in metrics
        assert 'pipestate_run_rejections_total{reason="process_limit"} 1.0' in metrics


class TestHealth:
    """Liveness, readiness, metrics and the OpenAPI document."""

    def test_health_ready_metrics_and_openapi(self, server: Server, org_key: str) -> None:
        """healthz and readyz answer 200; metrics carry the documented families."""
        with server.client() as client:
            client.get("/api/v1/runs/test_org", headers={"X-API-Key": org_key})
            assert client.get("/healthz").json()["status"] == "ok"
            ready = client.get("/readyz")
            metrics = client.get("/metrics")
            schema = client.get("/openapi.json").json()
        assert ready.status_code == 200
        assert ready.json()["checks"]["store"] == "ok"
        for family in (
            "pipestate_runs_total",
            "pipestate_runs_running",
            "pipestate_transitions_total",
            "pipestate_queue_depth",
            "pipestate_queue_utilization_pct",
            "pipestate_http_request_duration_seconds_bucket",
            "pipestate_gc_pause_seconds_bucket",
            "pipestate_gc_pause_max_seconds",
        ):
            assert family in metrics.text
        assert 'route="/api/v1/runs/{org_slug}",status="200"' in metrics.text
        assert "/api/v1/pipelines/run/{org_slug}/{provider}/{domain}/{pipeline}" in schema["paths"]
