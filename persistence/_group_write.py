"""What one group commit writes: each table's items, plus the run/step rows records imply.

Used by the GroupCommitter's writer thread (persistence/_group_commit.py) and by the writer
process's child (persistence/_writer_child.py), which derives the rows on its side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from persistence._batcher import to_rows, with_rejected, write_items
from persistence._channel import Item
from persistence._derive import derive_run_rows
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS, Store, WriteResult
from statemachine._log import lazy_logger
from statemachine.records import TransitionRecord

if TYPE_CHECKING:
    from persistence.stores._sqlite_rows import RecordValues

_log = lazy_logger("persistence.logger")

Parts = Sequence[tuple[str, Sequence[Item]]]
DERIVED_TABLES = (PIPELINE_RUNS, STEP_LOGS)


def derive_parts(parts: Parts) -> tuple[list[tuple[str, list[Item]]], int]:
    """The run and step rows the group's transition records imply, and how many failed.

    Runs where the rows are written (the writer thread, or the SQLite writer process), so the
    event loop pays nothing for them; only TransitionRecords emitted by the engine are in the
    transitions queue as records (log_state_transition queues rows), as emit() derived before.
    """
    return derive_records(
        [
            item
            for table, items in parts
            if table == STATE_TRANSITIONS
            for item in items
            if type(item) is TransitionRecord
        ]
    )


def derive_records(
    records: Sequence[TransitionRecord | RecordValues],
) -> tuple[list[tuple[str, list[Item]]], int]:
    """derive_parts for transition records (or the writer process's RecordValues) alone."""
    derived: dict[str, list[Item]] = {table: [] for table in DERIVED_TABLES}
    failures = 0
    for item in records:
        try:
            for derived_table, row in derive_run_rows(item):
                derived[derived_table].append(row)
        except Exception as error:  # counted and logged; the transition itself still lands
            failures += 1
            _log.warning(
                "metadata_derive_failed",
                transition_id=getattr(item, "transition_id", None),
                error=repr(error),
            )
    return [(table, rows) for table, rows in derived.items() if rows], failures


def write_group_derived(
    store: Store, parts: Parts, derive: bool
) -> tuple[list[WriteResult], list[tuple[str, WriteResult]], int]:
    """write_group, plus (derive=True) the derived run/step rows in the same transaction.

    Returns (one result per part, (table, result) per derived part, derive failures). A store
    that derives on its own side (SQLiteStore's writer process: derives_rows) gets the flag.
    """
    if not derive:
        return write_group(store, parts), [], 0
    if getattr(store, "derives_rows", False):
        results, derived, failures = store.write_many(parts, derive=True)  # type: ignore[attr-defined]
        return results, derived, failures
    extra, failures = derive_parts(parts)
    results = write_group(store, [*parts, *extra])
    own = results[: len(parts)]
    return (
        own,
        [(table, r) for (table, _), r in zip(extra, results[len(parts) :], strict=True)],
        failures,
    )


def write_group(store: Store, parts: Parts) -> list[WriteResult]:
    """Write each table's items, in one transaction where the store has write_many (a thread).

    write_many(parts) takes the items as they are from a store with write_records (SQLite),
    else row dicts; a store without it gets one write per table.
    """
    write_many = getattr(store, "write_many", None)
    if write_many is None:
        return [write_items(store, table, items) for table, items in parts]
    if getattr(store, "write_records", None) is not None:
        results: list[WriteResult] = write_many(parts)
        return results
    converted = [(table, *to_rows(items)) for table, items in parts]
    written: list[WriteResult] = write_many([(table, rows) for table, rows, _ in converted])
    return [
        with_rejected(result, bad) for result, (_, _, bad) in zip(written, converted, strict=True)
    ]
