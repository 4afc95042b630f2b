"""The service's metrics: the cyclic collector's pauses, timed in the served process."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest

from pipestate.service.metrics import GcPauses


class TestGcPauses:
    """Each collection is counted once, in its generation's histogram, only while started."""

    def test_counts_full_collections_while_started(self) -> None:
        """gc.collect() while started adds one generation-2 pause; after stop() none are added."""
        pauses = GcPauses()
        registry = CollectorRegistry()
        registry.register(pauses)
        pauses.start()
        try:
            gc.collect()
            gc.collect()
        finally:
            pauses.stop()
        assert sum(pauses.counts[2]) == 2
        assert 0 < pauses.max[2] <= pauses.sums[2]
        gc.collect()
        assert sum(pauses.counts[2]) == 2  # stopped: no longer timed
        text = generate_latest(registry).decode()
        assert 'pipestate_gc_pause_seconds_count{generation="2"} 2.0' in text
        assert 'pipestate_gc_pause_seconds_bucket{generation="2",le="+Inf"} 2.0' in text
        assert 'pipestate_gc_pause_max_seconds{generation="2"}' in text

    def test_start_twice_times_once(self) -> None:
        """Starting twice installs one callback: a collection is never counted twice."""
        pauses = GcPauses()
        pauses.start()
        pauses.start()
        try:
            gc.collect()
        finally:
            pauses.stop()
        assert sum(pauses.counts[2]) == 1
        assert pauses._callback not in gc.callbacks

    def test_reset_forgets_earlier_pauses(self) -> None:
        """reset() zeroes counts, sums and maxima; later collections are counted from there."""
        pauses = GcPauses()
        pauses.start()
        try:
            gc.collect()
            pauses.reset()
            assert (sum(pauses.counts[2]), pauses.sums[2], pauses.max[2]) == (0, 0.0, 0.0)
            gc.collect()
        finally:
            pauses.stop()
        assert sum(pauses.counts[2]) == 1


class TestLabelled:
    """Cached label children count exactly where labels() would."""

    def test_cached_child_is_the_labelled_series(self) -> None:
        """labelled() returns one child per label values; increments land in that series."""
        from pipestate.service.metrics import ServiceMetrics

        metrics = ServiceMetrics()
        first = metrics.labelled(metrics.runs, "COMPLETED")
        assert metrics.labelled(metrics.runs, "COMPLETED") is first
        first.inc()
        metrics.labelled(metrics.runs, "FAILED").inc(2)
        text = generate_latest(metrics.registry).decode()
        assert 'pipestate_runs_total{state="COMPLETED"} 1.0' in text
        assert 'pipestate_runs_total{state="FAILED"} 2.0' in text


class TestTransitions:
    """Transitions are counted in a plain dict and exported as a counter at scrape time."""

    def test_counts_are_exported_by_entity_type(self) -> None:
        """What the runner loop counts is what /metrics shows, per entity type."""
        from pipestate.service.metrics import ServiceMetrics

        metrics = ServiceMetrics()
        metrics.transitions["PIPELINE"] += 1
        metrics.transitions["STEP"] += 2
        text = generate_latest(metrics.registry).decode()
        assert 'pipestate_transitions_total{entity_type="PIPELINE"} 1.0' in text
        assert 'pipestate_transitions_total{entity_type="STEP"} 2.0' in text
        assert "# TYPE pipestate_transitions_total counter" in text
