"""The writer child's insert parameters straight from the frame's wire tuples (SQLite only).

A record arrives as (its other 17 fields, transition_time in integer microseconds since the
epoch, transition_date's proleptic ordinal): persistence/_frame.py. The route of the thread
writer rebuilds a datetime and a date per record, derives dict rows from them
(persistence/_derive.py) and converts all of it back to text (stores/_sqlite_rows.py). Here
the timestamps are formatted from the integers, the run and step rows are built as tuples in
their tables' column order, and nothing else is rebuilt: the same parameters, exactly
(tests/test_persistence_wire_rows.py compares both routes), for about half the CPU.

Only the usual batch takes this route: every item a record of the transitions table, no
required value missing, every derived row buildable. Anything else raises WireUnusual and the
writer child takes the general route, which also rejects and counts bad items one by one.
"""

from __future__ import annotations

import datetime as dt
import itertools
import operator
from collections.abc import Sequence
from typing import Any, TypeAlias

from persistence._derive import (
    DERIVING_STATES,
    STEP_COLUMNS,
    ends_run,
    error_context_of,
    step_column_values,
    step_columns,
    step_outcome,
)
from persistence._frame import WIRE_FIELDS
from persistence._rows import merged_metadata, run_log_id, step_log_id
from persistence.stores._sqlite_columns import metadata_texts
from statemachine.records import RECORD_FIELDS

_DAY_US = 86_400_000_000
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_MAX_DAYS = 4096  # the day-text cache is cleared beyond this many days (a long replay)
_SECOND_US = 1_000_000
_MAX_SECONDS = 4096  # the same for the per-second formats
_TIME = RECORD_FIELDS.index("transition_time")
(
    _ID,
    _ORG,
    _RUN,
    _STEP,
    _KIND,
    _NAME,
    _FROM,
    _TO,
    _REASON,
    _ERROR_TYPE,
    _ERROR_MESSAGE,
    _STACK,
    _RETRIES,
    _DURATION,
    _META,
    _TRIGGER,
    _USER,
) = range(len(WIRE_FIELDS))
_EXPECTED = (
    "transition_id",
    "org_slug",
    "pipeline_logging_id",
    "step_logging_id",
    "entity_type",
    "entity_name",
    "from_state",
    "to_state",
    "reason",
    "error_type",
    "error_message",
    "stack_trace_truncated",
    "retry_count",
    "duration_in_state_ms",
    "metadata",
    "trigger_type",
    "user_id",
)
if WIRE_FIELDS != _EXPECTED:  # the positions above are read from this order
    raise TypeError(f"WIRE_FIELDS {WIRE_FIELDS} differ from the order _wire_rows reads")
# Columns of the transitions table that may not be NULL (INSERT OR IGNORE would skip the row
# silently): the general route rejects such a record by id. The run and step rows' required
# columns come from these, or are computed.
_REQUIRED = (_ID, _ORG, _RUN, _KIND, _NAME, _FROM, _TO, _RETRIES, _DURATION)
_days: dict[int, str] = {}
_STEP_KEYS = frozenset(STEP_COLUMNS)
# step_outcome()'s (attempt, status, extra, never started) and the extra's JSON text.
_Outcome: TypeAlias = tuple[int, str, dict[str, Any], bool, str]
_outcomes: dict[tuple[str, str, int], _Outcome | None] = {}
_MAX_OUTCOMES = 1024
_UNKNOWN: _Outcome = (0, "", {}, False, "")  # a miss of _outcomes (compared by identity)
_seconds: dict[int, str] = {}  # second since the epoch -> "YYYY-MM-DDTHH:MM:SS.%06d+00:00"


class WireUnusual(Exception):
    """The batch is not the usual one: take the general route."""


def _day_text(day: int) -> str:
    """YYYY-MM-DD of a day counted from 1970-01-01 (ValueError outside years 1-9999)."""
    text = _days.get(day)
    if text is None:
        if len(_days) >= _MAX_DAYS:
            _days.clear()
        text = _days[day] = dt.date.fromordinal(day + _EPOCH_ORDINAL).isoformat()
    return text


def _fields_text(micros: int) -> str:
    """The canonical text of a time, formatted field by field (~0.8 us)."""
    day, rest = divmod(micros, _DAY_US)
    second, fraction = divmod(rest, _SECOND_US)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    # %-formatting: ~0.25 us cheaper per call than the f-string with format specs (measured).
    return "%sT%02d:%02d:%02d.%06d+00:00" % (  # noqa: UP031
        _day_text(day),
        hour,
        minute,
        second,
        fraction,
    )


def timestamp_text(micros: int) -> str:
    """The canonical text (record_timestamp's) of a UTC time in microseconds since the epoch.

    No datetime is built: the integers are formatted (~0.8 us against ~1.1 us for a UTC
    datetime and its isoformat()), or put into their second's text when timestamp_texts has
    cached it (~0.3 us).
    """
    form = _seconds.get(micros // _SECOND_US)
    return _fields_text(micros) if form is None else form % (micros % _SECOND_US)


def timestamp_texts(stamps: Sequence[int]) -> list[str]:
    """timestamp_text of each time, through a per-second cache when they share a second.

    A frame of a live pipeline's records spans a second or less (the 100-step chain: a few
    milliseconds): its second's text is formatted once and each time's fraction put into it,
    the loops in C (~0.3 us a time against ~0.8 us). Times whose first and last differ in
    their second (a backlog spread over days: a run's two or three records a second), or
    mostly in seconds not cached, are formatted field by field, as caching their seconds would
    cost more than it saves (~1.2 us a second).
    """
    if not stamps or stamps[0] // _SECOND_US != stamps[-1] // _SECOND_US:
        return list(map(_fields_text, stamps))
    seconds = list(map(operator.floordiv, stamps, itertools.repeat(_SECOND_US)))
    missing = set(seconds).difference(_seconds)
    if missing:
        if 4 * len(missing) > len(seconds):  # few times a second (not one second after all)
            return list(map(_fields_text, stamps))
        if len(_seconds) + len(missing) > _MAX_SECONDS:
            _seconds.clear()
            missing = set(seconds)
        for second in missing:
            _seconds[second] = _fields_text(second * _SECOND_US)[:20] + "%06d+00:00"
    fractions = map(operator.mod, stamps, itertools.repeat(_SECOND_US))
    return list(map(str.__mod__, map(_seconds.__getitem__, seconds), fractions))


def date_text(ordinal: int) -> str:
    """YYYY-MM-DD of a date's proleptic ordinal."""
    return _day_text(ordinal - _EPOCH_ORDINAL)


def wire_params(
    wires: Sequence[Any], derive: bool
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(transitions, pipeline-run rows, step-log rows) insert parameters of the wire tuples.

    The transitions column by column; with derive, the run and step rows the records imply,
    as derive_run_rows() + RowPreparer would give them (an end time is the record's own time
    text, formatted once).
    """
    rests, stamps, ordinals = zip(*wires, strict=True)
    columns: list[Any] = list(zip(*rests, strict=True))
    if len(columns) != len(WIRE_FIELDS):
        raise WireUnusual
    for i in _REQUIRED:
        # all() tests each value's truth, cheaper than `in`'s comparisons with None (~40 %):
        # only a column holding a false value ("" or 0) is searched for None.
        column = columns[i]
        if not all(column) and None in column:
            raise WireUnusual
    times = timestamp_texts(stamps)
    deriving = map(DERIVING_STATES.__contains__, columns[_TO]) if derive else None
    columns[_META] = metadata_texts(columns[_META])
    dates = {ordinal: date_text(ordinal) for ordinal in set(ordinals)}  # a few days per group
    columns[_TIME:_TIME] = (times, map(dates.__getitem__, ordinals))
    rows = list(zip(*columns, strict=True))
    runs: list[tuple[Any, ...]] = []
    steps: list[tuple[Any, ...]] = []
    if deriving is not None:
        records = zip(rests, stamps, times, strict=True)
        for rest, micros, end in itertools.compress(records, deriving):
            kind = rest[_KIND]
            if kind == "STEP":  # most records of a run
                if rest[_STEP] is not None:
                    outcome = _step_outcome(rest[_FROM], rest[_TO], rest[_RETRIES])
                    if outcome is not None:
                        steps.append(_step_row(rest, micros, end, outcome))
            elif kind == "PIPELINE" and ends_run(rest[_FROM], rest[_TO]):
                runs.append(_run_row(rest, micros, end))
    return rows, runs, steps


def _start(rest: Sequence[Any], micros: int, end: str) -> tuple[str, str, int]:
    """(start time text, run_date text, duration_ms) of the state the record leaves."""
    duration = rest[_DURATION]
    if type(duration) is not int:
        raise WireUnusual
    if not duration:  # left at once (a no-op step): the start is the end
        return end, end[:10], 0
    start = micros - duration * 1000
    return timestamp_text(start), _day_text(start // _DAY_US), duration


def _error_context(rest: Sequence[Any]) -> dict[str, Any] | None:
    return error_context_of(rest[_ERROR_TYPE], rest[_META], rest[_RETRIES], rest[_STACK])


def _run_row(rest: Sequence[Any], micros: int, end: str) -> tuple[Any, ...]:
    """org_meta_pipeline_runs' parameters of a run's end (persistence._derive._pipeline_rows)."""
    start, day, duration = _start(rest, micros, end)
    run = rest[_RUN]
    return (
        run_log_id(run, "end"),
        run,
        rest[_ORG],
        rest[_NAME],
        rest[_TO],
        start,
        end,
        day,
        duration,
        rest[_ERROR_MESSAGE],
        merged_metadata(rest[_META], _error_context(rest)),
        rest[_TRIGGER],
        rest[_USER],
    )


def _step_outcome(from_state: str, to_state: str, retry_count: int) -> _Outcome | None:
    """step_outcome() and the JSON text of its extra metadata, cached per edge and retry count.

    A run's step edges repeat (RUNNING -> COMPLETED at retry 0 for most steps): the cache
    spares a call and a dict per row, and the extra's JSON is encoded once. Only an int retry
    count is cached (True or 1.0 would hit 1's entry but make another attempt number).
    """
    if type(retry_count) is not int:
        return _with_text(step_outcome(from_state, to_state, retry_count))
    key = (from_state, to_state, retry_count)
    cached = _outcomes.get(key, _UNKNOWN)
    if cached is _UNKNOWN:
        if len(_outcomes) >= _MAX_OUTCOMES:
            _outcomes.clear()
        cached = _outcomes[key] = _with_text(step_outcome(from_state, to_state, retry_count))
    return cached


def _with_text(outcome: tuple[int, str, dict[str, Any], bool] | None) -> _Outcome | None:
    """The outcome and its extra metadata's JSON text (None: no row)."""
    if outcome is None:
        return None
    attempt, status, extra, never_started = outcome
    return attempt, status, extra, never_started, merged_metadata(extra, None)


def _step_row(rest: Sequence[Any], micros: int, end: str, outcome: _Outcome) -> tuple[Any, ...]:
    """org_meta_step_logs' parameters of an attempt's end (persistence._derive._step_rows)."""
    attempt, status, extra, never_started, extra_text = outcome
    duration = rest[_DURATION]
    if never_started or (duration == 0 and type(duration) is int):  # never ran, or left at once
        start, day, duration = end, end[:10], 0
    else:
        start, day, duration = _start(rest, micros, end)
    meta = rest[_META]
    if rest[_ERROR_TYPE] is None and meta.keys() <= _STEP_KEYS:
        # The executor's usual step metadata (only the two column keys) and no error: the
        # row's metadata is the outcome's extra alone, its text already encoded.
        step_type, step_index = step_column_values(meta)
        metadata = extra_text
    else:
        step_type, step_index, others = step_columns(meta)
        metadata = merged_metadata({**others, **extra}, _error_context(rest))
    step = rest[_STEP]
    return (
        step_log_id(step, attempt, "end"),
        step,
        rest[_RUN],
        rest[_ORG],
        rest[_NAME],
        step_type,
        step_index,
        attempt,
        status,
        start,
        end,
        day,
        duration,
        rest[_ERROR_MESSAGE],
        metadata,
        rest[_TRIGGER],
        rest[_USER],
    )
