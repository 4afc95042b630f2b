"""OpenLineage exporter: RunEvents over the client's HTTP transport to a real receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from executor.processors import unregister
from persistence.exporters import build_exporters
from persistence.exporters.openlineage import EVENT_TYPES, OpenLineageMapper, event_type_of
from statemachine import InMemorySink, PipelineRun, StepRun
from statemachine.spec import PIPELINE, STEP
from tests.exporter_support import (
    FAST,
    LEAKY_PROCESSOR,
    ORG,
    leaky_config,
    openlineage_validator,
    register_leaky,
    rows,
    run_logged,
    shipped_pipelines,
)
from tests.http_receiver import Receiver, receiving
from tests.strategies.hostile import SECRET_VALUES

# Per job: the eventTypes each shipped pipeline must send, in order (from each file's comments).
EXPECTED: dict[str, dict[str, list[str]]] = {
    "success": {
        "test-success": ["START", "COMPLETE"],
        "test-success.extract_data": ["START", "COMPLETE"],
        "test-success.load_warehouse": ["START", "COMPLETE"],
        "test-success.load_cache": ["START", "COMPLETE"],
    },
    "retry": {
        "test-retry": ["START", "COMPLETE"],
        "test-retry.fetch_api": ["START", "RUNNING", "RUNNING", "RUNNING", "RUNNING", "COMPLETE"],
    },
    "dependency": {
        "test-dependency": ["START", "FAIL"],
        "test-dependency.extract_data": ["START", "FAIL"],
        "test-dependency.transform_data": ["ABORT"],
        "test-dependency.load_data": ["ABORT"],
        "test-dependency.audit_report": ["START", "COMPLETE"],
    },
    "timeout": {
        "test-timeout": ["START", "FAIL"],
        "test-timeout.slow_step": ["START", "FAIL"],
    },
    # An invalid config is logged under the name it was asked by (the seed's trail).
    "validation": {"test/validation/test_bad_field": ["START", "FAIL"]},
}


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 that the client finds through its own OPENLINEAGE_URL."""
    with receiving() as server:
        for name in ("OPENLINEAGE_CONFIG", "OPENLINEAGE_DISABLED", "OPENLINEAGE_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OPENLINEAGE_URL", server.url)
        monkeypatch.chdir(server_dir := Path(__file__).parent)  # no stray openlineage.yml
        assert not (server_dir / "openlineage.yml").exists()
        yield server


def _events(server: Receiver) -> list[dict[str, Any]]:
    return [json.loads(body) for body in server.bodies("/api/v1/lineage")]


def _by_job(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in events:
        out.setdefault(event["job"]["name"], []).append(event["eventType"])
    return out


class TestShippedPipelines:
    """Each configs/test pipeline sends the documented events, linked, valid and secret-free."""

    @pytest.mark.parametrize("name", list(EXPECTED))
    def test_events_over_http(self, name: str, receiver: Receiver, tmp_path: Path) -> None:
        """Event sequence per job, run ids = logging ids, parent links, error facets, schema."""
        pipeline = shipped_pipelines(tmp_path)[name]
        db = tmp_path / "ol.db"
        result, stats = run_logged(
            pipeline, db, build_exporters(True, False, settings=FAST, isolate=False)
        )
        events = _events(receiver)
        assert stats["openlineage"]["dropped_total"] == 0
        assert _by_job(events) == EXPECTED[name]

        stored = {
            r["transition_id"]: r
            for r in rows(db, "org_meta_state_transitions", result.pipeline_logging_id)
        }
        assert len(events) == len(stored)
        step_ids = {
            r["entity_name"]: r["step_logging_id"] for r in stored.values() if r["step_logging_id"]
        }
        validator = openlineage_validator()
        for event in events:
            assert not list(validator.iter_errors(event)), event
            facets = event["run"]["facets"]
            row = stored[facets["pipestate_transition"]["transitionId"]]
            assert (
                facets["pipestate_transition"]["fromState"],
                facets["pipestate_transition"]["toState"],
            ) == (row["from_state"], row["to_state"])
            assert event["job"]["namespace"] == ORG
            assert event["eventTime"].startswith(row["transition_time"][:19])
            if row["entity_type"] == "STEP":
                assert event["run"]["runId"] == step_ids[row["entity_name"]]
                parent = facets["parent"]
                assert parent["run"]["runId"] == result.pipeline_logging_id
                assert parent["job"] == {"namespace": ORG, "name": result.pipeline_id, "facets": {}}
            else:
                assert event["run"]["runId"] == result.pipeline_logging_id
                assert "parent" not in facets
            if row["error_type"] is not None:
                error = facets["errorMessage"]
                assert error["programmingLanguage"] == "python"
                assert error["message"].startswith(f"{row['error_type']}: ")
            else:
                assert "errorMessage" not in facets

    def test_no_secret_reaches_the_receiver(self, receiver: Receiver, tmp_path: Path) -> None:
        """Steps raising every secret kind of test_secrets.py: no fragment in any request body."""
        register_leaky()
        try:
            result, _ = run_logged(
                leaky_config(),
                tmp_path / "leak.db",
                build_exporters(True, False, settings=FAST, isolate=False),
            )
        finally:
            unregister(LEAKY_PROCESSOR)
        bodies = receiver.bodies()
        assert result.state == "FAILED"
        assert (
            sum(b'"eventType": "RUNNING"' in b or b'"eventType":"RUNNING"' in b for b in bodies)
            >= 5
        )
        assert sum(b"errorMessage" in body for body in bodies) >= 10  # the failures did go out
        leaks = [
            secret[:8] for secret in SECRET_VALUES for body in bodies if secret.encode() in body
        ]
        assert leaks == []


class TestMapping:
    """The edge -> eventType table and the facets a record becomes."""

    def test_table_covers_every_machine_edge(self) -> None:
        """Every edge of both machines has an eventType, and the table names no other edge."""
        edges = {(table.kind, e.source, e.dest) for table in (PIPELINE, STEP) for e in table.edges}
        assert set(EVENT_TYPES) == edges

    def test_cancelled_failure_is_abort(self) -> None:
        """A FAILED row marked cancelled becomes ABORT; the same row uncancelled is FAIL."""
        run = PipelineRun.create("p", org_slug=ORG, sink=InMemorySink())
        run.start()
        step = StepRun.create("s", pipeline=run)
        step.start()
        cancelled = step.fail(
            RuntimeError("stop"), metadata={"cancelled": True, "cancel_source": "sigint"}
        )
        failed = run.fail(RuntimeError("boom"))
        assert (event_type_of(cancelled), event_type_of(failed)) == ("ABORT", "FAIL")

    def test_params_facet_from_the_start_record(self) -> None:
        """Run parameters in the PENDING->RUNNING metadata ride on the pipeline's events only."""
        sink = InMemorySink()
        run = PipelineRun.create("billing", org_slug=ORG, sink=sink)
        run.start(metadata={"params": {"day": "2024-01-02", "full": True}})
        step = StepRun.create("load", pipeline=run)
        step.start()
        step.complete()
        run.complete()
        mapper = OpenLineageMapper()
        events = [mapper.to_event(record) for record in sink.records]
        params = [e.run.facets.get("pipestate_params") for e in events]
        expected = {"day": "2024-01-02", "full": True}
        assert [p.params if p is not None else None for p in params] == [
            expected,
            None,
            None,
            expected,
        ]
        assert len(mapper.runs) == 0  # the finished run is forgotten

    def test_step_of_an_unseen_pipeline_is_still_named(self) -> None:
        """A step whose pipeline START was never seen gets a placeholder pipeline name."""
        run = PipelineRun.create("p", org_slug=ORG, sink=InMemorySink())
        run.start()  # the mapper below is never shown this record
        step = StepRun.create("s", pipeline=run)
        event = OpenLineageMapper().to_event(step.start())
        assert event.job.name == f"pipeline-{run.pipeline_logging_id[:8]}.s"
        assert event.run.facets["parent"].run.runId == run.pipeline_logging_id
