"""The end of the last pipeline run in flight, seen in the transitions the logger queues.

Once no run is in flight, nothing more is coming soon: MetadataLogger then ends the group it is
gathering at once (GroupCommitter.end_group_now) instead of after the commit delay, so a run's
last rows are on their way to the writer while its caller is still wrapping up, and a flush()
right after the run (the CLI, benchmarks/executor.py's chain) waits for less (issue 12).
At most once every EARLY_END_SECONDS: a stream of tiny runs, one after another, must not end a
group after each of them (each group end costs the writer a COMMIT).
"""

from __future__ import annotations

import time

from statemachine.records import TransitionRecord
from statemachine.spec import PIPELINE

PIPELINE_KIND = PIPELINE.kind
EARLY_END_SECONDS = 0.005  # as persistence._group_commit.STREAMING_COMMIT_DELAY_SECONDS
MAX_TRACKED_RUNS = 65_536  # runs whose end never came are forgotten past this many
_TERMINAL = PIPELINE.terminal


class RunEnds:
    """The pipeline runs in flight (by pipeline_logging_id) and when one last ended them all."""

    __slots__ = ("in_flight", "last_end")

    def __init__(self) -> None:
        self.in_flight: set[str] = set()
        self.last_end = -EARLY_END_SECONDS

    def last_ended(self, record: TransitionRecord) -> bool:
        """Note a PIPELINE record; True when it ended the last run in flight (and no run did
        so in the last EARLY_END_SECONDS)."""
        in_flight = self.in_flight
        run = record.pipeline_logging_id
        if record.to_state not in _TERMINAL:
            if len(in_flight) >= MAX_TRACKED_RUNS:
                in_flight.clear()  # runs that never ended here (another sink took their end)
            in_flight.add(run)
            return False
        if run not in in_flight:  # a run that started before this logger, or a repeated end
            return False
        in_flight.discard(run)
        if in_flight:
            return False
        now = time.monotonic()
        if now - self.last_end < EARLY_END_SECONDS:
            return False
        self.last_end = now
        return True
