"""OpenTelemetry exporter: span tree, timings, status and events; OTLP/HTTP to a real receiver."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from executor.processors import unregister
from persistence.exporters import build_exporters
from persistence.exporters.otel import span_exporter_from_env, to_ns
from tests.exporter_support import (
    FAST,
    LEAKY_PROCESSOR,
    ORG,
    leaky_config,
    register_leaky,
    rows,
    run_logged,
    shipped_pipelines,
)
from tests.http_receiver import receiving
from tests.strategies.hostile import SECRET_VALUES

OTEL_VARS = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable of the machine leaks into a test."""
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    return


def _ns(text: str) -> int:
    return to_ns(dt.datetime.fromisoformat(text))


def _traced(pipeline: Any, db: Path) -> tuple[Any, list[ReadableSpan]]:
    memory = InMemorySpanExporter()
    result, stats = run_logged(
        pipeline, db, build_exporters(False, True, settings=FAST, span_exporter=memory)
    )
    assert stats["otel"]["dropped_total"] == 0
    return result, list(memory.get_finished_spans())


class TestSpanTree:
    """Each shipped pipeline becomes one run span with one child per step attempt."""

    @pytest.mark.parametrize("name", ["success", "retry", "dependency", "timeout", "validation"])
    def test_tree_and_timings(self, name: str, tmp_path: Path) -> None:
        """Children of the run span, trace id = logging id, durations and times = stored rows."""
        db = tmp_path / "otel.db"
        result, spans = _traced(shipped_pipelines(tmp_path)[name], db)
        (run_span,) = [s for s in spans if s.parent is None]
        attempts = [s for s in spans if s.parent is not None]
        assert run_span.context.trace_id == uuid.UUID(result.pipeline_logging_id).int
        assert run_span.name == result.pipeline_id
        assert run_span.resource.attributes["pipestate.org_slug"] == ORG
        assert run_span.resource.attributes["service.name"] == "pipestate"

        (run_row,) = [
            r
            for r in rows(db, "org_meta_pipeline_runs", result.pipeline_logging_id)
            if r["end_time"]
        ]
        assert (run_span.start_time, run_span.end_time) == (
            _ns(run_row["start_time"]),
            _ns(run_row["end_time"]),
        )
        assert run_span.end_time - run_span.start_time == run_row["duration_ms"] * 1_000_000

        step_rows = rows(db, "org_meta_step_logs", result.pipeline_logging_id)
        never_ran = [r for r in step_rows if json.loads(r["metadata"]).get("never_started")]
        ended = {(r["step_logging_id"], r["attempt"]): r for r in step_rows if r not in never_ran}
        assert len(attempts) == len(ended)
        not_run_events = [e for e in run_span.events if e.name.startswith("pipestate.step_")]
        assert len(not_run_events) == len(never_ran)
        for span in attempts:
            assert span.parent is not None
            assert (span.parent.trace_id, span.parent.span_id) == (
                run_span.context.trace_id,
                run_span.context.span_id,
            )
            attrs = span.attributes or {}
            row = ended[(attrs["pipestate.step_logging_id"], attrs["pipestate.attempt"])]
            assert span.name == row["step_name"]
            assert (span.start_time, span.end_time) == (
                _ns(row["start_time"]),
                _ns(row["end_time"]),
            )
            assert span.end_time - span.start_time == row["duration_ms"] * 1_000_000
            ok = row["status"] == "COMPLETED"
            assert span.status.status_code == (StatusCode.OK if ok else StatusCode.ERROR)
            assert [e.name for e in span.events] == ([] if ok else ["exception"])

    def test_retry_attempts_linked_with_advice(self, tmp_path: Path) -> None:
        """test-retry: three attempts, each linked to the one before; failures give retry advice."""
        _result, spans = _traced(shipped_pipelines(tmp_path)["retry"], tmp_path / "r.db")
        attempts = sorted(
            (s for s in spans if s.parent is not None), key=lambda s: s.start_time or 0
        )
        assert [(s.attributes or {})["pipestate.attempt"] for s in attempts] == [1, 2, 3]
        assert attempts[0].links == ()
        for before, after in itertools.pairwise(attempts):
            (link,) = after.links
            assert link.context.span_id == before.context.span_id
        for failed in attempts[:2]:
            attrs = failed.attributes or {}
            assert attrs["error.type"] == "builtins.ConnectionError"
            assert attrs["pipestate.error_type"] == "TRANSIENT"
            assert attrs["pipestate.is_retryable"] is True
            assert attrs["pipestate.will_retry"] is True
            assert float(attrs["pipestate.next_retry_delay_seconds"]) > 0
            (event,) = failed.events
            assert "503 Service Unavailable" in str((event.attributes or {})["exception.message"])
        assert attempts[2].status.status_code == StatusCode.OK

    def test_steps_that_never_ran_are_run_span_events(self, tmp_path: Path) -> None:
        """test-dependency: the two blocked steps are events on the run span, not attempt spans."""
        _result, spans = _traced(shipped_pipelines(tmp_path)["dependency"], tmp_path / "d.db")
        (run_span,) = [s for s in spans if s.parent is None]
        not_run = {
            (e.attributes or {})["pipestate.step_id"]
            for e in run_span.events
            if e.name == "pipestate.step_not_run"
        }
        assert not_run == {"transform_data", "load_data"}
        assert {s.name for s in spans if s.parent is not None} == {"extract_data", "audit_report"}
        assert run_span.status.status_code == StatusCode.ERROR
        assert (run_span.attributes or {})["pipestate.error_type"] == "PERMANENT"

    def test_no_secret_in_any_span(self, tmp_path: Path) -> None:
        """Steps raising every secret kind: no fragment in names, attributes, events or status."""
        register_leaky()
        try:
            result, spans = _traced(leaky_config(), tmp_path / "leak.db")
        finally:
            unregister(LEAKY_PROCESSOR)
        assert result.state == "FAILED"
        assert sum(s.status.status_code == StatusCode.ERROR for s in spans) >= 10
        text = " ".join(span.to_json() for span in spans)
        assert "exception.message" in text
        assert [secret[:8] for secret in SECRET_VALUES if secret in text] == []


class TestOtlpHttp:
    """The wire path: OTLP/HTTP protobuf to a receiver named by the standard variables."""

    def test_spans_arrive_with_resource(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """POST /v1/traces carries every span and the service / org resource attributes."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        with receiving() as receiver:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
            monkeypatch.setenv("OTEL_SERVICE_NAME", "pipestate-test")
            pipeline = shipped_pipelines(tmp_path)["success"]
            run_logged(
                pipeline,
                tmp_path / "w.db",
                build_exporters(False, True, settings=FAST, isolate=False),
            )
            bodies = receiver.bodies("/v1/traces")
            types = {r.content_type for r in receiver.requests}
        assert types == {"application/x-protobuf"}
        names: set[str] = set()
        resources: list[dict[str, str]] = []
        for body in bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resources.append(
                    {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
                )
                for scope in resource_spans.scope_spans:
                    names.update(span.name for span in scope.spans)
        assert names == {"test-success", "extract_data", "load_warehouse", "load_cache"}
        assert {(r["service.name"], r["pipestate.org_slug"]) for r in resources} == {
            ("pipestate-test", ORG)
        }


class TestConfiguration:
    """The OTEL_* variables choose the exporter; a bad one is refused with its name."""

    @pytest.mark.parametrize(
        ("var", "value"),
        [("OTEL_TRACES_EXPORTER", "zipkin"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
    )
    def test_bad_value_named(self, var: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unsupported exporter or protocol raises ValueError naming the variable and value."""
        monkeypatch.setenv(var, value)
        with pytest.raises(ValueError, match=f"{var}.*{value}"):
            span_exporter_from_env()

    def test_console_exporter(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_TRACES_EXPORTER=console gives the SDK's console exporter."""
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
        assert isinstance(span_exporter_from_env(), ConsoleSpanExporter)
