"""Prometheus metrics of one service process (one registry per app, nothing global).

Counters and the latency histogram are updated as things happen; queue depths, drops and the
outbox backlog are read from the logger and the store at scrape time by a custom collector.
"""

from __future__ import annotations

import bisect
import collections
import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_GC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)


class GcPauses(Collector):
    """Cyclic-collector pauses of this process, by generation: every thread waits them out.

    A gc callback (installed by start(), removed by stop()) times each collection; it only
    adds to plain lists, no lock: a prometheus metric's lock taken inside a collection that
    began while the same thread held it would deadlock. Exported at scrape time.
    """

    def __init__(self) -> None:
        self.counts: list[list[int]] = []
        self.sums: list[float] = []
        self.max: list[float] = []
        self.reset()
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause, generation = time.perf_counter() - self._started, info["generation"]
        self.counts[generation][bisect.bisect_left(_GC_BUCKETS, pause)] += 1
        self.sums[generation] += pause
        self.max[generation] = max(self.max[generation], pause)

    def reset(self) -> None:
        """Forget the pauses so far (the server's start-up collection is not a serving pause)."""
        self.counts = [[0] * (len(_GC_BUCKETS) + 1) for _ in range(3)]
        self.sums = [0.0, 0.0, 0.0]
        self.max = [0.0, 0.0, 0.0]

    def start(self) -> None:
        """Start timing collections."""
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        """Stop timing collections."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def collect(self) -> Iterator[Any]:
        """Yield the pause histogram and the longest pause, by generation."""
        pauses = HistogramMetricFamily(
            "pipestate_gc_pause_seconds",
            "Cyclic garbage collections (all threads stopped), by generation",
            labels=["generation"],
        )
        longest = GaugeMetricFamily(
            "pipestate_gc_pause_max_seconds",
            "Longest cyclic garbage collection so far, by generation",
            labels=["generation"],
        )
        for generation in range(3):
            running, buckets = 0, []
            bounds = (*map(str, _GC_BUCKETS), "+Inf")
            for bound, count in zip(bounds, self.counts[generation], strict=True):
                running += count
                buckets.append((bound, running))
            pauses.add_metric([str(generation)], buckets, self.sums[generation])
            longest.add_metric([str(generation)], self.max[generation])
        yield from (pauses, longest)


class _LoggerCollector(Collector):
    """Queue depth, utilisation, rows written and dropped, outbox pending: read per scrape."""

    def __init__(self, sources: Callable[[], tuple[Any, Any]]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Any]:
        """Yield the logger's and the outbox's figures (nothing before the app started)."""
        logger, store = self._sources()
        if logger is None:
            return
        depth = GaugeMetricFamily(
            "pipestate_queue_depth", "Rows waiting in a logger queue", labels=["queue"]
        )
        util = GaugeMetricFamily(
            "pipestate_queue_utilization_pct", "Logger queue fill level (%)", labels=["queue"]
        )
        written = CounterMetricFamily(
            "pipestate_rows_written", "Rows the logger wrote to the store", labels=["table"]
        )
        dropped = CounterMetricFamily(
            "pipestate_rows_dropped", "Rows the logger dropped", labels=["table", "reason"]
        )
        for channel in logger.channels.values():
            snap = channel.snapshot()
            depth.add_metric([channel.short], snap["depth"])
            util.add_metric([channel.short], snap["utilization_pct"])
            written.add_metric([snap["table"]], snap["rows_written"])
            for reason, count in snap["drops_by_reason"].items():
                dropped.add_metric([snap["table"], reason], count)
        yield from (depth, util, written, dropped)
        status = getattr(store, "status", None)
        if callable(status):
            pending = GaugeMetricFamily(
                "pipestate_outbox_pending", "Rows in the outbox not yet shipped to the remote"
            )
            pending.add_metric([], float(status().get("pending_total") or 0))
            yield pending


class _TransitionCollector(Collector):
    """pipestate_transitions_total{entity_type}, from counts the runner loop keeps."""

    def __init__(self, counts: collections.Counter[str]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Any]:
        """Yield the transitions emitted so far, by entity type."""
        family = CounterMetricFamily(
            "pipestate_transitions",
            "State transitions emitted, by entity type",
            labels=["entity_type"],
        )
        for entity_type, count in sorted(dict(self._counts).items()):
            family.add_metric([entity_type], count)
        yield family


class ServiceMetrics:
    """The service's metrics, registered in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sources: tuple[Any, Any] = (None, None)
        self.runs = Counter(
            "pipestate_runs",
            "Pipeline runs ended, by final state",
            ["state"],
            registry=self.registry,
        )
        self.running = Gauge(
            "pipestate_runs_running", "Pipelines running in this process", registry=self.registry
        )
        # Counted per transition on the runner loop (one thread) in a plain dict, exported at
        # scrape time: a prometheus Counter takes a lock per inc() (issue 13: per-run cost).
        self.transitions: collections.Counter[str] = collections.Counter()
        self.registry.register(_TransitionCollector(self.transitions))
        self.rejections = Counter(
            "pipestate_run_rejections",
            "Run requests refused by admission, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pipestate_http_request_duration_seconds",
            "HTTP request latency by route template, method and status",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fast_answers = Counter(
            "pipestate_http_fast_answers",
            "Requests answered by a fast path, by route template (the rest by the full route)",
            ["route"],
            registry=self.registry,
        )
        self.registry.register(_LoggerCollector(lambda: self.sources))
        self.gc_pauses = GcPauses()
        self.registry.register(self.gc_pauses)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def labelled(self, metric: Any, *values: str) -> Any:
        """metric.labels(*values), cached (label values here are few and bounded).

        prometheus-client's labels() validates the values, builds a key and takes a lock on
        every call: about 2 % of the runner thread's time when called per transition (py-spy).
        """
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child
