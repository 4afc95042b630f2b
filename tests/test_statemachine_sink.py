"""statemachine.sink: the in-memory sink keeps every record, the null sink none."""

from __future__ import annotations

import threading

from statemachine import InMemorySink, ManualClock, NullSink, PipelineRun
from statemachine.sink import TransitionSink


class TestSinks:
    """Both sinks satisfy the protocol; InMemorySink loses nothing under threads."""

    def test_protocol(self) -> None:
        """Both sinks are TransitionSinks and an object without emit is not."""
        assert isinstance(InMemorySink(), TransitionSink)
        assert isinstance(NullSink(), TransitionSink)
        assert not isinstance(object(), TransitionSink)

    def test_in_memory_keeps_all_records_from_threads(self) -> None:
        """Records emitted from many threads are all kept, each once."""
        sink = InMemorySink()
        runs = [
            PipelineRun.create(f"p{i}", org_slug="o", sink=sink, clock=ManualClock())
            for i in range(8)
        ]
        threads = [threading.Thread(target=run.start) for run in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.entity_name for r in sink.records) == sorted(r.entity_name for r in runs)

    def test_null_sink_keeps_nothing(self) -> None:
        """A run on a NullSink still moves; the sink holds no records."""
        sink = NullSink()
        run = PipelineRun.create("p", org_slug="o", sink=sink, clock=ManualClock())
        assert run.start().to_state == "RUNNING"
        assert not hasattr(sink, "records")
