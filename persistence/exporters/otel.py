"""OpenTelemetry exporter: one span per pipeline run, one child span per step attempt.

Spans are built when the state they cover ends, from the record that ends it: start = end -
duration_in_state_ms, end = transition_time, the same window the run and step rows store, so a
span lasts exactly the stored duration. Span ids are reserved when a run starts (trace id = the
pipeline logging id's 128 bits), so children can point at a parent that is only built at the
end. Configured by the standard OTEL_* variables: OTEL_TRACES_EXPORTER (otlp, console),
OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT / _PROTOCOL / _HEADERS / _TIMEOUT, OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER.
"""

from __future__ import annotations

import collections
import datetime as dt
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

from classifier import redact
from persistence.exporters._otel_env import otel_exporter_choice
from persistence.exporters._otel_sdk import Collector, ReservedIds, new_provider
from persistence.exporters._runs import MAX_OPEN_RUNS, PIPELINE_ENDS, params_of
from persistence.fanout import ExportFailed
from statemachine.records import TransitionRecord

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
ATTEMPT_ENDS = frozenset({"COMPLETED", "FAILED", "RETRYING"})
# Edges that end a step without an attempt: recorded as events on the pipeline span.
NOT_RUN_EVENTS = {"PENDING": "pipestate.step_not_run", "RETRYING": "pipestate.step_abandoned"}


def to_ns(moment: dt.datetime) -> int:
    """Exact nanoseconds since the epoch of a UTC datetime (no float rounding)."""
    return (moment - _EPOCH) // _US * 1000


def window_ns(record: TransitionRecord) -> tuple[int, int]:
    """(start, end) in ns of the state `record` leaves: the stored duration, ending at its time."""
    end = to_ns(record.transition_time)
    return end - record.duration_in_state_ms * 1_000_000, end


def _trace_id(pipeline_logging_id: str) -> int | None:
    try:
        value = uuid.UUID(pipeline_logging_id).int
    except (ValueError, AttributeError, TypeError):
        return None
    return value or None


def _scalar(value: Any) -> Any:
    """An attribute value OpenTelemetry accepts: str/bool/int/float as is, anything else as text."""
    if isinstance(value, str | bool | int | float):
        return redact(value) if isinstance(value, str) else value
    return redact(str(value))


@attrs.define(slots=True)
class _OpenRun:
    """A pipeline run whose span is not built yet: its reserved ids and what to attach to it."""

    trace_id: int
    span_id: int
    params: dict[str, Any] | None = None
    events: list[tuple[str, dict[str, Any], int]] = attrs.field(factory=list)


def error_attributes(record: TransitionRecord) -> dict[str, Any]:
    """error.type plus pipestate's classification and retry advice of a failed record."""
    meta = record.metadata
    attributes: dict[str, Any] = {
        "error.type": meta.get("error_class") or record.error_type,
        "pipestate.error_type": record.error_type,
        "pipestate.error_class": meta.get("error_class"),
        "pipestate.is_retryable": meta.get("is_retryable"),
        "pipestate.next_retry_delay_seconds": meta.get("next_retry_delay_seconds"),
        "pipestate.will_retry": record.to_state == "RETRYING",
    }
    if meta.get("cancelled") is True:
        attributes["pipestate.cancelled"] = True
        attributes["pipestate.cancel_source"] = meta.get("cancel_source")
    return {key: _scalar(value) for key, value in attributes.items() if value is not None}


def exception_event(record: TransitionRecord) -> dict[str, Any]:
    """The redacted "exception" event's attributes (semantic-convention names)."""
    attributes = {
        "exception.type": record.metadata.get("error_class") or record.error_type,
        "exception.message": record.error_message or record.reason,
        "exception.stacktrace": record.stack_trace_truncated,
    }
    return {key: _scalar(value) for key, value in attributes.items() if value is not None}


class SpanBuilder:
    """Turns TransitionRecords into finished SDK spans (one TracerProvider per org)."""

    def __init__(self, service_name: str | None = None, limit: int = MAX_OPEN_RUNS) -> None:
        self.service_name = service_name
        self.collector = Collector()
        self._ids = ReservedIds()
        self._tracers: dict[str, Any] = {}
        self._runs: collections.OrderedDict[str, _OpenRun] = collections.OrderedDict()
        self._attempts: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._limit = limit
        self.evicted = 0

    def add(self, record: TransitionRecord) -> None:
        """Advance the spans of one record's run (a span is built when its window closes)."""
        if record.entity_type == "PIPELINE":
            self._pipeline(record)
        else:
            self._step(record)

    def shutdown(self) -> None:
        """Shut every per-org provider down (its processor is the in-process collector)."""
        for tracer_provider, _ in self._tracers.values():
            tracer_provider.shutdown()

    # -- pipelines ----------------------------------------------------------------------------

    def _open(self, record: TransitionRecord) -> _OpenRun:
        run = self._runs.get(record.pipeline_logging_id)
        if run is None:
            trace_id = _trace_id(record.pipeline_logging_id) or self._ids.random_trace_id()
            run = _OpenRun(trace_id=trace_id, span_id=self._ids.random_span_id())
            self._runs[record.pipeline_logging_id] = run
            while len(self._runs) > self._limit:
                self._runs.popitem(last=False)
                self.evicted += 1
        return run

    def _pipeline(self, record: TransitionRecord) -> None:
        run = self._open(record)
        if record.from_state == "PENDING":
            run.params = params_of(record)
            return
        if record.from_state != "RUNNING" or record.to_state not in PIPELINE_ENDS:
            return
        del self._runs[record.pipeline_logging_id]
        attributes: dict[str, Any] = {
            "pipestate.entity_type": "PIPELINE",
            "pipestate.pipeline_id": record.entity_name,
            "pipestate.pipeline_logging_id": record.pipeline_logging_id,
            "pipestate.org_slug": record.org_slug,
            "pipestate.state": record.to_state,
            "pipestate.trigger_type": record.trigger_type or "",
        }
        for key, value in (run.params or {}).items():
            attributes[f"pipestate.param.{key}"] = _scalar(value)
        self._ids.reserve(trace_id=run.trace_id, span_id=run.span_id)
        self._build(record, record.entity_name, None, attributes, (), run.events)

    # -- steps --------------------------------------------------------------------------------

    def _step(self, record: TransitionRecord) -> None:
        key = record.step_logging_id or record.transition_id
        run = self._open(record)
        if record.to_state == "FAILED" and record.from_state in NOT_RUN_EVENTS:
            self._attempts.pop(key, None)
            event_attributes = {
                "pipestate.step_id": record.entity_name,
                "pipestate.step_logging_id": key,
                "pipestate.error_type": record.error_type or "",
                "pipestate.reason": _scalar(record.reason or ""),
            }
            name = NOT_RUN_EVENTS[record.from_state]
            run.events.append((name, event_attributes, to_ns(record.transition_time)))
            return
        if record.from_state != "RUNNING" or record.to_state not in ATTEMPT_ENDS:
            return
        from opentelemetry import trace

        previous = self._attempts.pop(key, None)
        links = [trace.Link(previous, {"pipestate.link": "previous_attempt"})] if previous else []
        parent = trace.NonRecordingSpan(
            trace.SpanContext(
                trace_id=run.trace_id,
                span_id=run.span_id,
                is_remote=False,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
        )
        attributes = {
            "pipestate.entity_type": "STEP",
            "pipestate.step_id": record.entity_name,
            "pipestate.step_logging_id": key,
            "pipestate.pipeline_logging_id": record.pipeline_logging_id,
            "pipestate.org_slug": record.org_slug,
            "pipestate.attempt": record.retry_count + 1,
            "pipestate.state": record.to_state,
        }
        span = self._build(record, record.entity_name, parent, attributes, links, ())
        if record.to_state == "RETRYING":
            self._attempts[key] = span.get_span_context()
            while len(self._attempts) > self._limit:
                self._attempts.popitem(last=False)
                self.evicted += 1

    # -- spans --------------------------------------------------------------------------------

    def _tracer(self, org_slug: str) -> Any:
        entry = self._tracers.get(org_slug)
        if entry is None:
            tracer_provider = new_provider(org_slug, self.service_name, self._ids, self.collector)
            entry = (tracer_provider, tracer_provider.get_tracer("pipestate"))
            self._tracers[org_slug] = entry
        return entry[1]

    def _build(
        self,
        record: TransitionRecord,
        name: str,
        parent: Any,
        attributes: dict[str, Any],
        links: Sequence[Any],
        events: Sequence[tuple[str, dict[str, Any], int]],
    ) -> Any:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        start, end = window_ns(record)
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self._tracer(record.org_slug).start_span(
            name, context=context, attributes=attributes, links=links, start_time=start
        )
        for event_name, event_attributes, at in events:
            span.add_event(event_name, event_attributes, timestamp=at)
        if record.error_type is not None or record.to_state in ("FAILED", "TIMEOUT", "RETRYING"):
            span.set_attributes(error_attributes(record))
            span.add_event("exception", exception_event(record), timestamp=end)
            span.set_status(Status(StatusCode.ERROR, f"{record.error_type}: {record.to_state}"))
        else:
            span.set_status(Status(StatusCode.OK))
        span.end(end_time=end)
        return span


def span_exporter_from_env() -> Any:
    """The SpanExporter OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_*PROTOCOL ask for."""
    kind, protocol = otel_exporter_choice()
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)  # stdout is the CLI's (--json)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPSpanExporter as GrpcSpanExporter,
        )
    except ImportError:
        raise ValueError(
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc"
        ) from None
    return GrpcSpanExporter()


class OTelExporter:
    """Exporter protocol: builds the spans of a batch, then sends them in one export call."""

    name = "otel"

    def __init__(self, span_exporter: Any = None, *, service_name: str | None = None) -> None:
        chosen = span_exporter if span_exporter is not None else span_exporter_from_env()
        self.span_exporter = chosen
        self.builder = SpanBuilder(service_name)

    def export(self, records: Sequence[TransitionRecord]) -> None:
        """Build every span the batch closes and export them together."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        for record in records:
            self.builder.add(record)
        spans = self.builder.collector.take()
        if not spans:
            return
        result = self.span_exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            raise ExportFailed(f"OTLP export returned {result.name}", failed=len(records))

    def shutdown(self, timeout: float) -> None:
        """Shut down the providers and the span exporter."""
        self.builder.shutdown()
        self.span_exporter.shutdown()
