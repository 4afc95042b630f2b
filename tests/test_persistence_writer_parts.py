"""persistence._writer_parts: records as value tuples, groups encoded once into their frame."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import weakref
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence import LoggerSettings, MetadataLogger, SQLiteStore, _writer_pool
from persistence._frame import encode_parts as _encode_parts
from persistence._frame import wire_record
from persistence._writer_parts import (
    EncodedParts,
    _encode_group,
    record_from_values,
    record_values,
)
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS
from statemachine.records import TransitionRecord
from tests.strategies.records import record, transition_records


@pytest.fixture(autouse=True)
def unpooled_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests end each writer child with its store: no child is parked for reuse."""
    _writer_pool.clear()
    monkeypatch.setattr(_writer_pool, "POOL_SIZE", 0)


class TestRecordValues:
    """A pipelined store's records travel (and wait in the queue) as their value tuples."""

    @settings(max_examples=50, deadline=None)
    @given(rec=transition_records())
    def test_a_record_survives_its_value_tuple(self, rec: TransitionRecord) -> None:
        """Invariant: rebuilding a record from record_values(record) gives the same record."""
        assert record_from_values(record_values(rec)) == rec

    def test_a_value_tuple_is_encoded_as_its_record(self) -> None:
        """The frame of a group is the same whether it holds records, their value tuples or
        their wire tuples."""
        recs = [record(transition_id=f"v{i}", metadata={"i": i}) for i in range(3)]
        parts = [(STATE_TRANSITIONS, recs)]
        as_values = [(STATE_TRANSITIONS, [record_values(r) for r in recs])]
        as_wire = [(STATE_TRANSITIONS, [wire_record(r) for r in recs])]
        assert _encode_parts(as_values) == _encode_parts(parts)
        assert _encode_parts(as_wire) == _encode_parts(parts)

    def test_emit_keeps_no_record_and_the_row_lands_whole(self, tmp_path: Path) -> None:
        """Under a writer child, emit() queues the record's wire tuple and keeps no reference
        to the record itself; the stored row is the record's."""
        path = tmp_path / "v.db"

        async def body() -> None:
            store = SQLiteStore(path, writer_process=True)
            try:
                async with MetadataLogger(store) as logger:
                    channel = logger.channels[STATE_TRANSITIONS]
                    rec = record(transition_id="whole", reason="why", metadata={"k": "v", "n": 2})
                    alive = weakref.ref(rec)
                    logger.emit(rec)
                    assert channel.queue[-1] == wire_record(rec)
                    del rec
                    assert alive() is None
                    assert await logger.flush(timeout=60)
            finally:
                store.close()

        asyncio.run(body())
        with sqlite3.connect(path) as conn:
            row = conn.execute(
                "SELECT reason, metadata FROM org_meta_state_transitions WHERE transition_id = ?",
                ("whole",),
            ).fetchone()
        assert row[0] == "why"
        assert json.loads(row[1]) == {"k": "v", "n": 2}

    def test_emit_drops_a_record_the_full_queue_cannot_take(self, tmp_path: Path) -> None:
        """emit()'s short way queues only while the queue has room: past its capacity (no
        put_timeout) a record is dropped as queue_full, and after stop() as shutdown."""
        settings = LoggerSettings(batch_size=2, queue_size=2, put_timeout=0.0)

        async def body() -> tuple[int, dict[str, int], dict[str, int]]:
            store = SQLiteStore(tmp_path / "full.db", writer_process=True)
            try:
                logger = MetadataLogger(store, settings)
                await logger.start()
                channel = logger.channels[STATE_TRANSITIONS]
                for i in range(5):  # no await in between: nothing leaves the queue meanwhile
                    logger.emit(record(transition_id=f"f{i}"))
                queued = len(channel.queue)
                full = dict(channel.drops)
                await logger.stop()
                logger.emit(record(transition_id="late"))
                return queued, full, dict(channel.drops)
            finally:
                store.close()

        queued, full, after = asyncio.run(body())
        assert queued == 2
        assert full == {"queue_full": 3}
        assert after == {"queue_full": 3, "shutdown": 1}


class TestEncodedParts:
    """A group encoded once is sent (and resent) as its frame, without its items."""

    def test_encoded_parts_carry_the_frame_of_their_items(self) -> None:
        """EncodedParts read as the parts' tables and send the frame the parts would."""
        recs = [record(transition_id=f"e{i}", metadata={"i": i}) for i in range(3)]
        parts = [(STATE_TRANSITIONS, [record_values(r) for r in recs]), (PIPELINE_RUNS, [])]
        encoded = EncodedParts(parts, True)
        assert [table for table, _ in encoded] == [STATE_TRANSITIONS, PIPELINE_RUNS]
        assert _encode_group(encoded, True) == _encode_group(parts, True)
        with pytest.raises(ValueError, match="derive=True"):
            _encode_group(encoded, False)

    @settings(max_examples=30, deadline=None)
    @given(recs=st.lists(transition_records(), max_size=4))
    def test_decoded_gives_back_what_was_encoded(self, recs: list[TransitionRecord]) -> None:
        """Invariant: the records and rows an encoded group holds are the ones encoded."""
        rows = [{"pipeline_logging_id": "p1", "n": 1}]
        parts = [(STATE_TRANSITIONS, [record_values(r) for r in recs]), (PIPELINE_RUNS, rows)]
        assert EncodedParts(parts, False).decoded() == [
            (STATE_TRANSITIONS, recs),
            (PIPELINE_RUNS, rows),
        ]
