"""When the last pipeline run in flight ends, the logger ends its group at once (issue 12).

RunEnds (persistence/_run_ends.py) follows the PIPELINE records the logger queues; the logger
then sends the gathered group without waiting for its commit delay, so a run's last rows are
committed while its caller wraps up. The integration tests use a real SQLite file, a real
writer child and real PipelineRuns, with a commit delay of an hour: only the early end can
commit the rows before a flush().
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence import LoggerSettings, MetadataLogger, SQLiteStore, _group_commit, _run_ends
from persistence._run_ends import EARLY_END_SECONDS, RunEnds
from statemachine import PipelineRun
from statemachine.records import TransitionRecord
from tests.strategies.records import record

HOUR = LoggerSettings(batch_size=100, flush_interval_seconds=7200)


def pipeline(run: str, frm: str, to: str) -> TransitionRecord:
    """A PIPELINE record of run `run` moving frm -> to."""
    return record(pipeline_logging_id=run, entity_type="PIPELINE", from_state=frm, to_state=to)


class TestRunEnds:
    """The bookkeeping on its own: which end is the last one."""

    def test_the_end_of_the_only_run_is_the_last(self) -> None:
        """A run that started here and ends: True once, for its terminal record only."""
        ends = RunEnds()
        assert not ends.last_ended(pipeline("r1", "PENDING", "RUNNING"))
        assert ends.last_ended(pipeline("r1", "RUNNING", "COMPLETED"))
        assert ends.in_flight == set()

    def test_only_the_last_of_two_runs_ends_them_all(self) -> None:
        """With two runs in flight, the first end is not the last; the second is."""
        ends = RunEnds()
        for run in ("a", "b"):
            ends.last_ended(pipeline(run, "PENDING", "RUNNING"))
        assert not ends.last_ended(pipeline("a", "RUNNING", "FAILED"))
        ends.last_end = -EARLY_END_SECONDS  # no recent early end
        assert ends.last_ended(pipeline("b", "RUNNING", "TIMEOUT"))

    def test_a_run_never_seen_starting_ends_nothing(self) -> None:
        """The end of a run that started before this logger (or ends twice) is not counted."""
        ends = RunEnds()
        assert not ends.last_ended(pipeline("old", "RUNNING", "COMPLETED"))
        ends.last_ended(pipeline("r", "PENDING", "RUNNING"))
        assert ends.last_ended(pipeline("r", "RUNNING", "COMPLETED"))
        ends.last_end = -EARLY_END_SECONDS
        assert not ends.last_ended(pipeline("r", "RUNNING", "COMPLETED"))

    def test_at_most_one_early_end_per_interval(self) -> None:
        """Tiny runs one after another: the second last-end within EARLY_END_SECONDS is not
        reported (each early end costs the writer a COMMIT), one after it is."""
        ends = RunEnds()
        ends.last_ended(pipeline("r1", "PENDING", "RUNNING"))
        assert ends.last_ended(pipeline("r1", "RUNNING", "COMPLETED"))
        ends.last_ended(pipeline("r2", "PENDING", "RUNNING"))
        assert not ends.last_ended(pipeline("r2", "RUNNING", "COMPLETED"))
        ends.last_ended(pipeline("r3", "PENDING", "RUNNING"))
        ends.last_end = time.monotonic() - EARLY_END_SECONDS
        assert ends.last_ended(pipeline("r3", "RUNNING", "COMPLETED"))

    def test_runs_that_never_end_are_forgotten_past_the_cap(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The set of runs in flight stays bounded: past MAX_TRACKED_RUNS it starts again."""
        monkeypatch.setattr(_run_ends, "MAX_TRACKED_RUNS", 3)
        ends = RunEnds()
        for i in range(5):
            ends.last_ended(pipeline(f"r{i}", "PENDING", "RUNNING"))
        assert len(ends.in_flight) <= 3
        assert "r4" in ends.in_flight


class TestRunEndsProperty:
    """Against a model: a set of runs started and not ended."""

    @given(
        st.lists(
            st.tuples(st.integers(0, 5), st.sampled_from(["RUNNING", "COMPLETED", "FAILED"])),
            max_size=60,
        )
    )
    def test_true_exactly_when_an_end_empties_the_runs_in_flight(
        self, moves: list[tuple[int, str]]
    ) -> None:
        """Invariant: with no rate limit, last_ended() is True exactly for a terminal record of
        a run seen starting and not yet ended, after which no started run is left in flight;
        every other record (a start, a repeated end, the end of a run never seen) is False."""
        ends = RunEnds()
        model: set[str] = set()
        for run_number, to_state in moves:
            run = f"run-{run_number}"
            ends.last_end = -EARLY_END_SECONDS  # no rate limit here (tested above)
            terminal = to_state != "RUNNING"
            got = ends.last_ended(pipeline(run, "RUNNING" if terminal else "PENDING", to_state))
            expected = terminal and run in model and model == {run}
            if terminal:
                model.discard(run)
            else:
                model.add(run)
            assert got == expected
            assert ends.in_flight == model


def stored(path: Path) -> set[str]:
    """The transition ids committed to the file (a connection of its own)."""
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT transition_id FROM org_meta_state_transitions")}


async def wait_stored(path: Path, ids: set[str], seconds: float = 10.0) -> bool:
    """Poll the file until it holds every id in `ids` (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ids <= await asyncio.to_thread(stored, path):
            return True
        await asyncio.sleep(0.01)
    return False


def drive(path: Path, scenario: Callable[[MetadataLogger], Awaitable[list[str]]]) -> list[str]:
    """Run `scenario` with a started logger on a real SQLite file (writer child); return the ids
    it emitted, once the file holds every one of them (no flush() before that)."""
    store = SQLiteStore(path, writer_process=True)
    ids: list[str] = []

    async def body() -> None:
        async with MetadataLogger(store, HOUR) as logger:
            ids.extend(await scenario(logger))
            assert await wait_stored(path, set(ids))

    asyncio.run(body())
    store.close()
    return ids


def depth(logger: MetadataLogger) -> int:
    """Transitions queued in the logger, not sent to the writer yet."""
    return int(logger.get_queue_depths()["state_transition"]["depth"])


class TestLoggerEndsTheGroup:
    """MetadataLogger + SQLiteStore's writer child, commit delay one hour."""

    @pytest.fixture(autouse=True)
    def hour_long_commit_delay(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Only an early end (or a flush(), never called here) can send the rows."""
        monkeypatch.setattr(_group_commit, "COMMIT_DELAY_SECONDS", 3600.0)

    def test_rows_of_an_ended_run_are_committed_without_flush(self, tmp_path: Path) -> None:
        """A run in flight keeps its rows queued (the hour-long delay); once it ends, every
        row of it reaches the file with no flush() and no timer."""

        async def scenario(logger: MetadataLogger) -> list[str]:
            run = PipelineRun.create("nightly", org_slug="acme", sink=logger)
            ids = [run.start().transition_id]
            await asyncio.sleep(0.05)  # the committer waits in its (hour-long) delay
            assert depth(logger) == 1  # a run in flight: nothing sent yet
            ids.append(run.complete().transition_id)
            assert depth(logger) == 0
            return ids

        ids = drive(tmp_path / "ends.db", scenario)
        assert stored(tmp_path / "ends.db") == set(ids)

    def test_a_run_still_in_flight_waits_for_its_group(self, tmp_path: Path) -> None:
        """Two runs: the first one's end leaves the rows queued (another run is in flight);
        the second one's end sends them all."""

        async def scenario(logger: MetadataLogger) -> list[str]:
            first = PipelineRun.create("a", org_slug="acme", sink=logger)
            second = PipelineRun.create("b", org_slug="acme", sink=logger)
            ids = [first.start().transition_id, second.start().transition_id]
            await asyncio.sleep(0.05)
            ids.append(first.complete().transition_id)
            assert depth(logger) == 3
            logger._run_ends.last_end = -EARLY_END_SECONDS  # the rate limit is tested above
            ids.append(second.complete().transition_id)
            assert depth(logger) == 0
            return ids

        ids = drive(tmp_path / "two.db", scenario)
        assert stored(tmp_path / "two.db") == set(ids)
