"""The OpenTelemetry SDK pieces the span builder needs: reserved ids, a collector, providers."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

DEFAULT_SERVICE_NAME = "pipestate"
ORG_ATTRIBUTE = "pipestate.org_slug"


class ReservedIds(IdGenerator):
    """Random ids, except the next trace/span id when one was reserved (a run's known ids)."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self._trace_id: int | None = None
        self._span_id: int | None = None

    def reserve(self, *, trace_id: int, span_id: int) -> None:
        """Make the next span (a root) take these ids."""
        self._trace_id, self._span_id = trace_id, span_id

    def random_trace_id(self) -> int:
        """A fresh random trace id."""
        return self._random.generate_trace_id()

    def random_span_id(self) -> int:
        """A fresh random span id."""
        return self._random.generate_span_id()

    def generate_span_id(self) -> int:
        """The reserved span id once, else a random one."""
        value, self._span_id = self._span_id, None
        return value if value is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        """The reserved trace id once, else a random one."""
        value, self._trace_id = self._trace_id, None
        return value if value is not None else self._random.generate_trace_id()


class Collector(SpanProcessor):
    """Keeps ended spans until the exporter takes them as one batch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        """Keep the span."""
        with self._lock:
            self._spans.append(span)

    def take(self) -> list[ReadableSpan]:
        """Every span kept so far (and forget them)."""
        with self._lock:
            spans, self._spans = self._spans, []
        return spans


def resource_for(org_slug: str, service_name: str | None) -> Resource:
    """OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME, plus the org; service "pipestate" if unset."""
    resource = Resource.create({ORG_ATTRIBUTE: org_slug})
    current = str(resource.attributes.get(SERVICE_NAME, ""))
    if service_name is not None or current.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name or DEFAULT_SERVICE_NAME}))
    return resource


def new_provider(
    org_slug: str, service_name: str | None, ids: ReservedIds, collector: Collector
) -> Any:
    """A TracerProvider for one org, its spans going to `collector`."""
    resource = resource_for(org_slug, service_name)
    tracer_provider = TracerProvider(resource=resource, id_generator=ids)
    tracer_provider.add_span_processor(collector)
    return tracer_provider
