"""The writer child's streamed groups (persistence/_writer_stream.py), on a real SQLite file.

A group's transitions arrive in data frames while the parent still gathers the group, then its
last frame; each frame's rows are inserted at once, committed later, and the group's reply counts
them all. These tests drive StreamedCommits in this process with the frames the parent sends
(persistence._frame.encode_parts / dump_group), then read the file with a separate connection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import attrs

from persistence import LoggerSettings, MetadataLogger, SQLiteStore, _group_commit
from persistence._frame import dump_group, encode_parts, load_reply
from persistence._writer_child import _commit
from persistence._writer_stream import StreamedCommits, merged
from persistence.bootstrap import bootstrap
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS, StoreError
from statemachine.records import TransitionRecord
from tests.strategies.records import record

NEVER = LoggerSettings(batch_size=100, flush_interval_seconds=3600)


def payload(items: list[Any], group: int | None, *, table: str = STATE_TRANSITIONS) -> bytes:
    """One frame's payload as the parent encodes it (a data frame's or a group's last frame)."""
    encoded, _ = encode_parts([(table, items)])
    return dump_group(encoded, True, group)


def records(prefix: str, count: int) -> list[TransitionRecord]:
    """`count` pipeline records with ids prefix-0, prefix-1, ..."""
    return [record(transition_id=f"{prefix}-{i}") for i in range(count)]


def stored(path: Path, table: str = STATE_TRANSITIONS, column: str = "transition_id") -> set[str]:
    """The ids in `table`, read by a connection of its own (committed rows only)."""
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute(f'SELECT "{column}" FROM "{table}"')}


def open_store(path: Path) -> SQLiteStore:
    """A bootstrapped store run the writer child's way, in this process."""
    store = SQLiteStore(path, writer_process=False)
    bootstrap(store)
    store.tune_for_writer_child()
    return store


def replies_of(replies: list[Any]) -> list[Any]:
    """The replies as the parent reads them (a streamed group's comes encoded: ok_reply)."""
    return [load_reply(reply) if type(reply) is bytes else reply for reply in replies]


def good_and_bad(prefix: str, count: int) -> tuple[list[TransitionRecord], TransitionRecord]:
    """`count` good records and one missing a required value (org_slug)."""
    bad = attrs.evolve(record(transition_id=f"{prefix}-bad"), org_slug=None)  # type: ignore[arg-type]
    return records(prefix, count), bad


def written(reply: Any) -> list[int]:
    """The rows a successful reply counts per part of its group."""
    status, (results, _, _) = reply
    assert status == "ok", reply
    return [result.written for result in results]


class TestGroups:
    """Data frames are counted in the reply of the group whose number they carry."""

    def test_data_frames_count_in_their_groups_reply(self, tmp_path: Path) -> None:
        """Two data frames and a last frame of one group: one reply counting all six rows, and
        all six rows committed."""
        path = tmp_path / "one.db"
        store = open_store(path)
        rows = records("g1", 6)
        stream = StreamedCommits(store, _commit)
        stream.add(payload(rows[:3], 1), data=True)
        stream.add(payload(rows[3:5], 1), data=True)
        stream.add(payload(rows[5:], 1), data=False)
        (reply,) = replies_of(stream.commit())
        store.close()
        assert written(reply) == [6]
        assert stored(path) == {r.transition_id for r in rows}

    def test_interleaved_groups_keep_their_own_rows(self, tmp_path: Path) -> None:
        """A group's data frames may follow another group's (a retried group is resent after
        the next group started streaming): each reply counts only its own group's rows."""
        path = tmp_path / "mixed.db"
        store = open_store(path)
        first, second = records("a", 4), records("b", 5)
        stream = StreamedCommits(store, _commit)
        stream.add(payload(second[:3], 2), data=True)
        stream.add(payload(first[:3], 1), data=True)
        stream.add(payload(first[3:], 1), data=False)
        stream.add(payload(second[3:], 2), data=False)
        replies = replies_of(stream.commit())
        store.close()
        assert [written(reply) for reply in replies] == [[4], [5]]
        assert stored(path) == {r.transition_id for r in first + second}

    def test_answered_frames_are_freed_after_the_reply(self, tmp_path: Path) -> None:
        """commit() answers a group and keeps its frames (freeing ~200 rows takes ~40 us the
        parent would wait for) until release(); a group not ended keeps its data frames."""
        path = tmp_path / "release.db"
        store = open_store(path)
        done, open_group = records("done", 3), records("open", 2)
        stream = StreamedCommits(store, _commit)
        stream.add(payload(done[:2], 1), data=True)
        stream.add(payload(open_group, 2), data=True)
        stream.add(payload(done[2:], 1), data=False)
        (reply,) = replies_of(stream.commit())
        assert written(reply) == [3]
        assert [group for _, _, _, group in stream.frames] == [2]  # the open group's frame
        assert stream._answered_frames  # held until the reply is written
        stream.release()
        assert not stream._answered_frames
        stream.add(payload([], 2), data=False)
        (reply,) = replies_of(stream.commit())
        store.close()
        assert written(reply) == [2]
        assert stored(path) == {r.transition_id for r in done + open_group}

    def test_derived_rows_of_data_frames_are_reported(self, tmp_path: Path) -> None:
        """The run row a data frame's record implies is written and counted in the reply."""
        path = tmp_path / "derived.db"
        store = open_store(path)
        end = record(transition_id="end", from_state="RUNNING", to_state="COMPLETED")
        stream = StreamedCommits(store, _commit)
        stream.add(payload([end], 7), data=True)
        stream.add(payload([], 7), data=False)
        (reply,) = replies_of(stream.commit())
        store.close()
        assert dict(reply[1][1]) == {PIPELINE_RUNS: attrs.evolve(reply[1][1][0][1], written=1)}
        assert len(stored(path, PIPELINE_RUNS, "run_log_id")) == 1

    def test_data_frames_of_one_group_are_inserted_together(self, tmp_path: Path) -> None:
        """Consecutive data frames of one group are held and inserted in one go; a frame of
        another group inserts them first; a commit inserts what is still held."""
        path = tmp_path / "held.db"
        store = open_store(path)
        first, second = records("h1", 5), records("h2", 2)
        stream = StreamedCommits(store, _commit)
        stream.add(payload(first[:3], 1), data=True)
        stream.add(payload(first[3:], 1), data=True)
        assert stream.held_rows == 5
        stream.add(payload(second, 2), data=True)
        assert stream.held_rows == 2  # the first group's five went into the transaction
        assert replies_of(stream.commit()) == []
        store.close()
        assert stream.held_rows == 0
        assert stored(path) == {r.transition_id for r in first + second}

    def test_merged_keeps_every_record_index(self) -> None:
        """Merging data frames into a last frame shifts each frame's record indexes by the
        rows before it; the last frame's other parts stay as they were."""
        data = [[(STATE_TRANSITIONS, ["a", "b"], [0, 1])], [(STATE_TRANSITIONS, ["c"], [0])]]
        last = [(STATE_TRANSITIONS, ["d"], [0]), (STEP_LOGS, [{"x": 1}], [])]
        assert merged(data, last) == [  # type: ignore[arg-type]
            (STATE_TRANSITIONS, ["a", "b", "c", "d"], [0, 1, 2, 3]),
            (STEP_LOGS, [{"x": 1}], []),
        ]


class TestCommits:
    """Rows wait in the open transaction until a commit; the unusual take the general route."""

    def test_rows_are_committed_only_by_commit(self, tmp_path: Path) -> None:
        """A data frame's rows are inserted but invisible to other connections until commit()
        (which answers nobody: the group has not ended)."""
        path = tmp_path / "open.db"
        store = open_store(path)
        rows = records("open", 3)
        stream = StreamedCommits(store, _commit)
        stream.add(payload(rows, 3), data=True)
        assert stream.pending
        assert stored(path) == set()
        assert replies_of(stream.commit()) == []
        assert not stream.pending
        assert stored(path) == {r.transition_id for r in rows}
        store.close()

    def test_a_bad_record_sends_its_group_the_general_way(self, tmp_path: Path) -> None:
        """A record missing a required value (org_slug) in a data frame rolls the transaction
        back; the group is then written by the general route, which rejects that record by id
        and stores every other row of the group, including the earlier data frame's."""
        path = tmp_path / "bad.db"
        store = open_store(path)
        good, bad = good_and_bad("good", 4)
        stream = StreamedCommits(store, _commit)
        stream.add(payload(good[:2], 4), data=True)
        stream.add(payload([bad, good[2]], 4), data=True)
        stream.add(payload(good[3:], 4), data=False)
        (reply,) = replies_of(stream.commit())
        store.close()
        (result,) = reply[1][0]
        assert [error.row_id for error in result.rejected] == [bad.transition_id]
        assert stored(path) == {r.transition_id for r in good}

    def test_the_end_commits_a_group_that_never_ended(self, tmp_path: Path) -> None:
        """At end-of-file (the parent died mid-group) the rows already read are committed."""
        path = tmp_path / "eof.db"
        store = open_store(path)
        rows = records("eof", 5)
        stream = StreamedCommits(store, _commit)
        stream.add(payload(rows[:2], 5), data=True)
        stream.add(payload(rows[2:], 5), data=True)
        assert replies_of(stream.finish()) == []
        store.close()
        assert stored(path) == {r.transition_id for r in rows}

    def test_the_end_writes_a_broken_group_the_general_way(self, tmp_path: Path) -> None:
        """At end-of-file a group that left the fast route (a bad record) and never ended is
        still written by the general route: its good rows land, the bad one is refused."""
        path = tmp_path / "eof-bad.db"
        store = open_store(path)
        good, bad = good_and_bad("eofbad", 3)
        stream = StreamedCommits(store, _commit)
        stream.add(payload(good[:2], 6), data=True)
        stream.add(payload([bad, good[2]], 6), data=True)
        stream.insert_held()  # what the child does once it has read all that waits
        assert stream.broken
        stream.finish()
        store.close()
        assert stored(path) == {r.transition_id for r in good}

    def test_a_failed_commit_fails_the_ended_groups_and_redoes_the_others(
        self, tmp_path: Path
    ) -> None:
        """A COMMIT that fails answers the ended group with the error (the parent resends it)
        and rolls back the next group's early rows too, which that group's own end writes
        again: nothing of the next group is lost."""
        path = tmp_path / "fail.db"
        store = open_store(path)
        first, second = records("f", 2), records("s", 3)
        stream = StreamedCommits(store, _commit)
        txn = stream.txn
        assert txn is not None
        real_commit = txn.commit
        calls: list[int] = []

        def failing_commit() -> None:
            calls.append(1)
            if len(calls) == 1:
                txn.rollback()
                raise StoreError("disk I/O error", retryable=True)
            real_commit()

        txn.commit = failing_commit
        stream.add(payload(first, 1), data=False)
        stream.add(payload(second[:2], 2), data=True)
        (failed,) = replies_of(stream.commit())
        assert failed[0] == "error"
        assert failed[3] is True  # retryable: the parent resends the group
        stream.add(payload(second[2:], 2), data=False)
        (reply,) = replies_of(stream.commit())
        store.close()
        assert written(reply) == [3]
        assert stored(path) == {r.transition_id for r in second}


class TestWithAChild:
    """The parent streams to a real writer child; a child lost mid-group costs no row."""

    def test_a_group_streamed_to_a_child_that_died_is_resent_whole(self, tmp_path: Path) -> None:
        """Rows streamed to a child that is killed before the group ends are sent again, with
        the group's last frame, to the next child: every row lands exactly once."""
        path = tmp_path / "died.db"
        store = SQLiteStore(path, writer_process=True)
        total = 2 * _group_commit.STREAM_ROWS + 5
        rows = [record(transition_id=f"died{i:03d}") for i in range(total)]
        depths: dict[str, Any] = {}

        async def body() -> None:
            async with MetadataLogger(store, NEVER) as logger:
                assert await logger.flush(timeout=30)  # the child runs and is idle
                pid = store.writer_pid
                assert pid is not None
                for rec in rows:  # one turn: two data frames leave, five rows stay queued
                    logger.emit(rec)
                depths.update(logger.get_queue_depths()["state_transition"])
                os.kill(pid, signal.SIGKILL)
                assert await logger.flush(timeout=30)
                depths["written"] = logger.get_queue_depths()["state_transition"]["rows_written"]
                assert store.writer_pid not in (None, pid)

        asyncio.run(body())
        store.close()
        assert depths["in_flight"] == 2 * _group_commit.STREAM_ROWS
        assert depths["written"] == total
        assert stored(path) == {r.transition_id for r in rows}
