"""Metadata JSON cannot encode is stored as readable strings and never breaks a flush."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from persistence import MetadataLogger, SQLiteStore
from persistence.queries import run_query
from persistence.stores.base import STATE_TRANSITIONS
from statemachine import InMemorySink, PipelineRun, StepRun, TransitionRecord
from statemachine.records import dumps_metadata
from tests.strategies.events import running_pipeline
from tests.strategies.hostile import (
    Unprintable,
    UnprintableKey,
    cyclic_dict,
    cyclic_list,
    hostile_metadata,
    transition_rows,
    with_logger,
)

WHEN = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)

# name -> (metadata value, a substring its stored JSON must contain)
NAMED: dict[str, tuple[object, str]] = {
    "datetime": (WHEN, "2024-05-06T07:08:09"),
    "date": (WHEN.date(), "2024-05-06"),
    "decimal": (decimal.Decimal("12.50"), '"12.50"'),
    "decimal_nan": (decimal.Decimal("NaN"), '"NaN"'),
    "bytes": (b"raw \xff\x00 bytes", "raw"),
    "bytearray": (bytearray(b"abc"), '"abc"'),
    "set": ({"b", "a"}, '[\\"a\\", \\"b\\"]'),
    "frozenset": (frozenset({2, 1}), "[1, 2]"),
    "cycle_dict": (cyclic_dict(), "loop"),
    "cycle_list": (cyclic_list(), "<cycle: list>"),
    "unprintable": (Unprintable(), "<unprintable Unprintable>"),
    "object": (object(), "<object object at"),
    "complex": (complex(1, 2), "(1+2j)"),
    "nan": (float("nan"), '"nan"'),
    "inf": (float("-inf"), '"-inf"'),
    "huge_int": (2**200, str(2**200)),
    "exception": (ValueError("bad row 7"), "bad row 7"),
    "type": (int, "<class 'int'>"),
    "surrogate": ("half \ud800 pair", "half \ufffd pair"),
    "deep": ({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}, "nested deeper"),
}


def _stored_metadata(row: dict[str, Any]) -> dict[str, Any]:
    value = json.loads(row["metadata"])
    assert isinstance(value, dict)
    return value


def _record_via_complete(metadata: dict[Any, Any]) -> TransitionRecord:
    sink = InMemorySink()
    step = StepRun.create("s", pipeline=running_pipeline("p", org_slug="o", sink=sink))
    step.start()
    return step.complete(metadata=metadata)


class TestSerialisation:
    """dumps_metadata and TransitionRecord.to_row turn anything into valid, strict JSON."""

    @pytest.mark.parametrize("name", list(NAMED))
    def test_named_value_is_readable(self, name: str) -> None:
        """Each non-JSON value is stored as a readable string inside valid JSON."""
        value, expected = NAMED[name]
        text = _record_via_complete({"value": value, "ok": 1}).to_row()["metadata"]
        json.loads(text, parse_constant=_refuse_constant)
        text.encode("utf-8")
        assert expected in text
        assert '"ok": 1' in text

    def test_unprintable_and_odd_keys(self) -> None:
        """Keys that are not strings (or cannot be printed) become strings; the values stay."""
        odd: dict[Any, Any] = {UnprintableKey(): 1, (1, 2): 2, 3: "three", None: 4}
        text = dumps_metadata(odd)
        stored = json.loads(text)
        assert sorted(stored.values(), key=str) == sorted(["1", "2", "three", "4"], key=str)
        assert "<unprintable UnprintableKey>" in stored

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(hostile_metadata())
    def test_any_metadata_serialises(self, metadata: dict[Any, Any]) -> None:
        """For any metadata, complete() succeeds and to_row() yields strict, UTF-8 JSON."""
        row = _record_via_complete(metadata).to_row()
        json.loads(row["metadata"], parse_constant=_refuse_constant)
        row["metadata"].encode("utf-8")


def _refuse_constant(name: str) -> float:
    raise AssertionError(f"bare {name} is not JSON")


class TestStoredMetadata:
    """Hostile metadata rides with good rows in one batch to SQLite; every row lands."""

    def test_one_batch_with_every_hostile_value(self, tmp_path: Path) -> None:
        """A batch mixing good rows and every hostile value is written whole, readable."""
        db = tmp_path / "meta.db"

        async def body(logger: MetadataLogger) -> dict[str, str]:
            pipeline = PipelineRun.create("p", org_slug="o", sink=logger)
            pipeline.start(metadata={"good": "before"})
            ids = {}
            for name, (value, _) in NAMED.items():
                step = StepRun.create(name, pipeline=pipeline)
                step.start(metadata={"v": value})
                ids[name] = step.complete(metadata={name: value}).transition_id
                failing = StepRun.create(f"{name}-fails", pipeline=pipeline)
                failing.start()
                failing.fail(RuntimeError("x"), metadata={name: value})
            pipeline.fail(RuntimeError("x"), metadata={"good": "after"})
            return ids

        ids, depths = with_logger(db, body, batch_size=500)
        rows = {r["transition_id"]: r for r in transition_rows(db)}
        assert len(rows) == 2 + 4 * len(NAMED)
        assert depths["state_transition"]["rows_dropped"] == 0
        for name, transition_id in ids.items():
            stored = rows[transition_id]["metadata"]
            json.loads(stored, parse_constant=_refuse_constant)
            assert NAMED[name][1] in stored, (name, stored)

    def test_nan_metadata_does_not_break_queries(self, tmp_path: Path) -> None:
        """A NaN in one failed step's metadata must not break the 'steps' query (json_extract
        refuses bare NaN, which would fail the query for every row in the window)."""
        db = tmp_path / "nan.db"

        async def body(logger: MetadataLogger) -> None:
            pipeline = PipelineRun.create("p", org_slug="o", sink=logger)
            pipeline.start()
            step = StepRun.create("ratio", pipeline=pipeline)
            step.start()
            step.fail(ValueError("bad ratio"), metadata={"ratio": float("nan")})
            pipeline.fail(ValueError("bad ratio"), metadata={"inf": float("inf")})

        with_logger(db, body)
        store = SQLiteStore(db)
        try:
            steps = run_query(store, "steps", days=3650)
        finally:
            store.close()
        assert [(r["step_name"], r["failures"]) for r in steps] == [("ratio", 1)]

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(hostile_metadata(), hostile_metadata())
    def test_random_metadata_batches_land(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        first: dict[Any, Any],
        second: dict[Any, Any],
    ) -> None:
        """Random hostile metadata in a batch with plain rows: write_batch writes all of them."""
        sink = InMemorySink()
        pipeline = PipelineRun.create("p", org_slug="o", sink=sink)
        pipeline.start(metadata={"plain": 1})
        step = StepRun.create("s", pipeline=pipeline)
        step.start(metadata=first)
        step.fail(RuntimeError("boom"), metadata=second)
        pipeline.fail(RuntimeError("boom"))
        db = tmp_path_factory.mktemp("batch") / "b.db"
        store = SQLiteStore(db)
        try:
            result = store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in sink.records])
        finally:
            store.close()
        assert result.rejected == ()
        assert result.written == len(sink.records)
        for row in transition_rows(db):
            _stored_metadata(row)
