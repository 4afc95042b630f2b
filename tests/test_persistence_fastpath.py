"""The SQLite fast path: records written without dicts, backlog batching, store URLs."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import math
import sqlite3
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence import LoggerSettings, MetadataLogger, SQLiteStore, open_store
from persistence.stores._sqlite_rows import encodable_values, metadata_json
from persistence.stores.base import STATE_TRANSITIONS, WriteResult
from statemachine.records import TransitionRecord, dumps_metadata
from tests.strategies.records import many_records, record, transition_records


def _table(path: Path) -> list[tuple[Any, ...]]:
    """Every transitions row, ordered by id, read with a separate connection."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            f'SELECT * FROM "{STATE_TRANSITIONS}" ORDER BY transition_id'
        ).fetchall()
    finally:
        conn.close()


def _tampered(rec: TransitionRecord, **values: Any) -> TransitionRecord:
    """A record with fields set past attrs' validation (what a buggy producer could hand over)."""
    for name, value in values.items():
        object.__setattr__(rec, name, value)
    return rec


class TestWriteRecords:
    """write_records(table, records) stores exactly what write_batch(table, to_row()s) stores."""

    @settings(max_examples=25, deadline=None)
    @given(st.lists(transition_records(id_prefix="fp"), min_size=1, max_size=15))
    def test_records_store_the_same_cells_as_their_rows(
        self, records: list[TransitionRecord]
    ) -> None:
        """For any valid records, the table after write_records equals the table after
        write_batch of their to_row() dicts, cell for cell."""
        with tempfile.TemporaryDirectory() as tmp:
            via_rows, via_records = Path(tmp) / "rows.db", Path(tmp) / "records.db"
            a, b = SQLiteStore(via_rows), SQLiteStore(via_records)
            try:
                ra = a.write_batch(STATE_TRANSITIONS, [r.to_row() for r in records])
                rb = b.write_records(STATE_TRANSITIONS, records)
            finally:
                a.close()
                b.close()
            assert ra == rb == WriteResult(written=len(records))
            assert _table(via_records) == _table(via_rows)

    @pytest.mark.parametrize("count", [1, 52, 53, 130])
    def test_batches_spanning_several_statements_land_whole(
        self, tmp_path: Path, count: int
    ) -> None:
        """Batches cut into several multi-row INSERTs (52 rows each) store every row once,
        the same as write_batch; a bad row in a later statement rejects itself only."""
        records = many_records(count, prefix=f"span{count}")
        rows_db, records_db = tmp_path / "rows.db", tmp_path / "records.db"
        a, b = SQLiteStore(rows_db), SQLiteStore(records_db)
        try:
            a.write_batch(STATE_TRANSITIONS, [r.to_row() for r in records])
            assert b.write_records(STATE_TRANSITIONS, records) == WriteResult(written=count)
            assert b.write_records(STATE_TRANSITIONS, records) == WriteResult(written=count)
            bad = _tampered(record(transition_id="zz-bad"), reason=object())
            result = b.write_records(STATE_TRANSITIONS, [*records, bad])
        finally:
            a.close()
            b.close()
        assert [e.row_id for e in result.rejected] == ["zz-bad"]
        assert result.written == count
        assert _table(records_db) == _table(rows_db)

    def test_odd_metadata_is_stored_as_dumps_metadata_renders_it(self, tmp_path: Path) -> None:
        """Non-JSON values, NaN and nesting in metadata are stored as dumps_metadata's text."""
        metadata = {
            "when": dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
            "amount": decimal.Decimal("1.50"),
            "ratio": math.nan,
            "nested": {"b": [1, 2], "a": None},
        }
        store = SQLiteStore(tmp_path / "m.db")
        try:
            store.write_records(STATE_TRANSITIONS, [record(transition_id="m1", metadata=metadata)])
        finally:
            store.close()
        (row,) = _table(tmp_path / "m.db")
        assert dumps_metadata(metadata) in row

    def test_a_bad_record_rejects_itself_and_the_rest_land(self, tmp_path: Path) -> None:
        """A NULL org_slug, an unbindable reason and a lone surrogate among good records: the
        first two are rejected by id, the surrogate is replaced by U+FFFD, the rest land."""
        items: list[TransitionRecord | Mapping[str, Any]] = [
            record(transition_id="ok-1"),
            _tampered(record(transition_id="null-org"), org_slug=None),
            _tampered(record(transition_id="dict-reason"), reason={"not": "text"}),
            record(transition_id="surrogate", entity_name="bad \ud800 name"),
            record(transition_id="ok-2").to_row(),
        ]
        store = SQLiteStore(tmp_path / "b.db")
        try:
            result = store.write_records(STATE_TRANSITIONS, items)
        finally:
            store.close()
        assert sorted(e.row_id for e in result.rejected) == ["dict-reason", "null-org"]
        assert result.written == 3
        ids = {row[0]: row for row in _table(tmp_path / "b.db")}
        assert sorted(ids) == ["ok-1", "ok-2", "surrogate"]
        assert "bad \ufffd name" in ids["surrogate"]

    def test_a_record_that_cannot_convert_rejects_itself(self, tmp_path: Path) -> None:
        """A record whose transition_time is not a datetime is rejected by id, not the batch."""
        items = [
            record(transition_id="good"),
            _tampered(record(transition_id="bad"), transition_time=5),
        ]
        store = SQLiteStore(tmp_path / "c.db")
        try:
            result = store.write_records(STATE_TRANSITIONS, items)
        finally:
            store.close()
        assert [e.row_id for e in result.rejected] == ["bad"]
        assert [row[0] for row in _table(tmp_path / "c.db")] == ["good"]


_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.binary(max_size=8),
    st.decimals(allow_nan=False),
)
_metadata = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        _json_leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    ),
    max_size=5,
)


class TestMetadataJson:
    """The store's cached-encoder metadata JSON is dumps_metadata's text, byte for byte."""

    @settings(max_examples=200, deadline=None)
    @given(_metadata)
    def test_same_text_as_dumps_metadata(self, metadata: dict[str, Any]) -> None:
        """For any metadata (NaN, datetimes, bytes, decimals, nesting, lone surrogates), the
        text the store binds, once made encodable, equals dumps_metadata(metadata)."""
        assert encodable_values([metadata_json(metadata)]) == [dumps_metadata(metadata)]

    def test_cycles_and_non_dicts_fall_back(self) -> None:
        """A cyclic dict and a non-dict value take dumps_metadata's own path."""
        cyclic: dict[str, Any] = {"a": 1}
        cyclic["self"] = cyclic
        assert metadata_json(cyclic) == dumps_metadata(cyclic)
        assert metadata_json([1, 2]) == dumps_metadata([1, 2])  # type: ignore[arg-type]
        assert metadata_json({}) == "{}" == dumps_metadata({})


class GatedStore:
    """A SQLiteStore front whose first write waits for `gate`; it records batch sizes and the
    most writes ever in flight at once, and offers the SQLite fast path and hints."""

    max_batch_rows = 1000
    max_concurrent_writes = 1

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def write_records(self, table: str, items: Sequence[Any]) -> WriteResult:
        """Wait for the gate on the first call, then write through."""
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            first = not self.batches
            self.batches.append(len(items))
        try:
            if first:
                self.entered.set()
                self.gate.wait(30)
            return self.inner.write_records(table, items)
        finally:
            with self._lock:
                self.in_flight -= 1

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Not used when write_records exists; delegates."""
        return self.inner.write_batch(table, rows)

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Delegates."""
        return self.inner.query(name, params)

    def close(self) -> None:
        """Delegates."""
        self.inner.close()


class TestBacklogBatching:
    """With a store that prefers large batches, a backlog goes out in fewer, larger writes."""

    def test_rows_queued_behind_a_busy_write_go_out_together(self, tmp_path: Path) -> None:
        """While the first 10-row write is held, 500 rows queue up; once it returns they are
        written in one batch (up to max_batch_rows), each exactly once, one write at a time."""
        settings = LoggerSettings(
            batch_size=10, queue_size=1000, workers=5, flush_interval_seconds=3600
        )
        store = GatedStore(SQLiteStore(tmp_path / "g.db"))
        records = many_records(510, prefix="gate")

        async def body() -> None:
            async with MetadataLogger(store, settings) as logger:
                for r in records[:10]:
                    logger.emit(r)
                assert await asyncio.to_thread(store.entered.wait, 30)
                for r in records[10:]:
                    logger.emit(r)
                await asyncio.sleep(0)
                store.gate.set()
                assert await logger.flush(timeout=30)
                depths = logger.get_queue_depths()["state_transition"]
                assert depths["rows_written"] == 510

        asyncio.run(body())
        store.close()
        assert store.batches == [10, 500]
        assert store.most_in_flight == 1
        assert [row[0] for row in _table(tmp_path / "g.db")] == sorted(
            r.transition_id for r in records
        )

    def test_rows_trickling_in_fill_one_batch(self, tmp_path: Path) -> None:
        """Rows emitted one per loop iteration, with a one-hour interval, are written as one
        full batch as soon as the batch is full."""
        settings = LoggerSettings(batch_size=5, flush_interval_seconds=3600)
        store = GatedStore(SQLiteStore(tmp_path / "t.db"))
        store.gate.set()

        async def body() -> None:
            async with MetadataLogger(store, settings) as logger:
                for r in many_records(5, prefix="trickle"):
                    logger.emit(r)
                    await asyncio.sleep(0)
                assert await asyncio.to_thread(store.entered.wait, 30)
                assert store.batches == [5]

        asyncio.run(body())
        store.close()


class TestStoreUrls:
    """open_store: SQLite paths are literal file names; BigQuery sits behind an outbox."""

    def test_file_prefixed_path_is_a_plain_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """'sqlite:file:audit.db' creates ./file:audit.db, not a URI-named database."""
        monkeypatch.chdir(tmp_path)
        store = open_store("sqlite:file:audit.db")
        try:
            store.write_batch(STATE_TRANSITIONS, [record(transition_id="u").to_row()])
        finally:
            store.close()
        assert [row[0] for row in _table(tmp_path / "file:audit.db")] == ["u"]

    @pytest.mark.parametrize("path", ["a\x00b.db", "\x00"])
    def test_nul_in_path_is_a_value_error_naming_it(self, path: str) -> None:
        """A NUL byte in the path is refused when the store is made, quoting the path."""
        with pytest.raises(ValueError, match="path") as info:
            SQLiteStore(path)
        assert repr(path) in str(info.value)

    def test_bigquery_is_wrapped_in_an_outbox_by_default(self, tmp_path: Path) -> None:
        """open_store('bigquery:...') returns an OutboxStore writing to the given file, with a
        short client deadline; outbox=False returns the bare BigQueryStore."""
        from persistence.outbox import OutboxStore
        from persistence.stores.bigquery import BigQueryStore

        outbox_path = tmp_path / "outbox.db"
        wrapped = open_store("bigquery:proj.ds", client=object(), outbox=outbox_path)
        try:
            assert isinstance(wrapped, OutboxStore)
            assert wrapped.path == str(outbox_path)
            assert isinstance(wrapped.remote, BigQueryStore)
            assert wrapped.remote._timeout == 10.0
        finally:
            wrapped.close(timeout=0)
        bare = open_store("bigquery:proj.ds", client=object(), outbox=False)
        assert isinstance(bare, BigQueryStore)
        assert bare._timeout == 30.0


class TestOutboxEncoding:
    """The outbox stores any row: lone surrogates never make its SQLite insert fail."""

    def test_lone_surrogates_become_replacement_characters(self, tmp_path: Path) -> None:
        """A row whose id and text hold lone surrogates is enqueued, with U+FFFD in their place."""
        from persistence._outbox_db import OutboxDB, encode_row, row_id_of

        row = {"transition_id": "id-\udc80", "reason": "a \ud800 b", "n": 1}
        text = encode_row(row)
        text.encode("utf-8")
        assert "a \ufffd b" in text
        assert row_id_of(STATE_TRANSITIONS, row) == "id-\ufffd"
        db = OutboxDB(tmp_path / "o.db")
        try:
            db.enqueue(STATE_TRANSITIONS, [row])
            (stored,) = db.oldest(10)
        finally:
            db.close()
        assert stored.row()["reason"] == "a \ufffd b"
