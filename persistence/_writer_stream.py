"""The writer child's streamed groups: rows inserted as their frames arrive, one COMMIT per group.

The parent's group committer (persistence/_group_commit.py) sends a group's transitions while it
is still gathering the group: "data" frames (the _DATA header bit, persistence/_writer_child.py),
each a group payload with one part, the transitions table; then the group's last frame, an
ordinary group frame whose first part is the transitions table (possibly empty). Both carry the
group's number, so a group's rows are its own whatever else the pipe carries between them (a
retried group is resent after the next group's first rows). The child inserts each frame's rows
into one open transaction as soon as it reads them and commits once a group's last frame has
arrived and nothing more is waiting; the reply of a group counts its data frames' rows in its
first part. When a pipeline emits its last row, the child has inserted nearly all the others
already: flush() waits for those last rows and one COMMIT, not for the whole last group (issue
12: the 100-step chain's tail after its last step).

Whatever the fast route cannot take (a part of another table, an unusual record, a row SQLite
refuses) rolls the transaction back; the frames not yet answered then go the general route
(persistence._writer_child._commit) as whole groups, each group's data frames merged into its
last frame, exactly as if the group had been sent in one frame.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from persistence._frame import Encoded, load_frame, ok_reply
from persistence._wire_rows import WireUnusual, wire_params
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS

# _commit(store, [(encoded, derive), ...]) -> one reply per group (the general route).
GeneralCommit = Callable[[Any, list[tuple[Encoded, bool]]], list[Any]]
HELD_ROWS = 512  # data frames' rows inserted together at most (see StreamedCommits.add)


def error_reply(error: BaseException) -> tuple[str, str, str, bool | None]:
    """A failure as plain values (StoreError's keyword-only argument does not unpickle)."""
    from persistence.stores.base import StoreError

    retryable = error.retryable if isinstance(error, StoreError) else None
    return ("error", type(error).__name__, str(error), retryable)


def merged(data: list[Encoded], last: Encoded) -> Encoded:
    """A group's data frames and last frame as the one group they stand for."""
    if not data:
        return last
    values: list[Any] = []
    records: list[int] = []
    head = last[:1] if last and last[0][0] == STATE_TRANSITIONS else []
    for encoded in [*data, head]:
        for _, more_values, more_records in encoded:
            base = len(values)
            values += more_values
            records += [base + index for index in more_records]
    return [(STATE_TRANSITIONS, values, records), *last[len(head) :]]


class StreamedCommits:
    """The frames the child has read and not answered, and the transaction holding their rows."""

    def __init__(self, store: Any, general: GeneralCommit) -> None:
        self.store = store
        self.general = general
        opener = getattr(store, "prepared_transaction", None)
        self.txn = opener() if opener is not None else None
        self.broken = self.txn is None  # True: the frames wait for the general route
        # (encoded, derive, data frame?, group number) of every frame read and not answered.
        self.frames: list[tuple[Encoded, bool, bool, int | None]] = []
        self.owed = 0  # groups whose last frame is among `frames`: a reply each
        # Fast route: (rows per part of the last frame, its data frames' in the first; run rows;
        # step rows) of each owed group, and per group number the rows of data frames so far.
        self.counts: list[tuple[list[int], int, int]] = []
        self.streamed: dict[int, tuple[int, int, int]] = {}
        # (group number, derive, wire tuples) of consecutive data frames not inserted yet.
        self._held: tuple[int, bool, list[Any]] | None = None
        # The answered frames, freed by release() once their replies are written: freeing a
        # chain's ~200 rows costs ~40 us the parent's flush() would otherwise wait for.
        self._answered_frames: list[Any] = []

    @property
    def held_rows(self) -> int:
        """Rows of data frames read but not inserted yet (see add)."""
        return len(self._held[2]) if self._held is not None else 0

    def add(self, payload: bytes, data: bool) -> None:
        """Take one frame: insert its rows (fast route) or keep it for the general route.

        Consecutive data frames of one group are held and inserted together (insert_held),
        when the child has read everything that waits or HELD_ROWS are held: a child behind
        its pipeline then runs its statements for hundreds of rows at a time, not per frame.
        """
        encoded, derive, group = load_frame(payload)
        self.frames.append((encoded, derive, data, group))
        if not data:
            self.owed += 1
        if self.broken:
            return
        if data and group is not None and _plain(encoded):
            held = self._held
            if held is not None and (held[:2] != (group, derive) or len(held[2]) >= HELD_ROWS):
                self.insert_held()
            if not self.broken:
                if self._held is None:
                    self._held = (group, derive, [])
                self._held[2].extend(encoded[0][1])
            return
        self.insert_held()
        if self.broken:
            return
        try:
            parts, runs, steps = self._insert(encoded, derive)
        except Exception:  # anything unusual: the general route names and rejects it
            self._break()
            return
        rows, more_runs, more_steps = self.streamed.pop(group, (0, 0, 0)) if group else (0, 0, 0)
        if data:
            self.streamed[group or 0] = (rows + sum(parts), more_runs + runs, more_steps + steps)
            return
        if rows and not (encoded and encoded[0][0] == STATE_TRANSITIONS):
            self._break()  # the parent always opens such a group with its transitions part
            return
        if parts:
            parts[0] += rows
        self.counts.append((parts, runs + more_runs, steps + more_steps))

    def insert_held(self) -> None:
        """Insert the data frames held back (see add) in one go."""
        held, self._held = self._held, None
        if held is None or self.broken:
            return
        group, derive, values = held
        try:
            parts, runs, steps = self._insert(
                [(STATE_TRANSITIONS, values, list(range(len(values))))], derive
            )
        except Exception:  # anything unusual: the general route names and rejects it
            self._break()
            return
        rows, more_runs, more_steps = self.streamed.pop(group, (0, 0, 0))
        self.streamed[group] = (rows + sum(parts), more_runs + runs, more_steps + steps)

    def _insert(self, encoded: Encoded, derive: bool) -> tuple[list[int], int, int]:
        """Insert a frame's transitions and the run/step rows they imply; rows per part."""
        if self.txn is None:
            raise WireUnusual
        parts, runs, steps = prepared_params([encoded], derive)
        self.txn.insert([*parts, (PIPELINE_RUNS, runs), (STEP_LOGS, steps)])
        return [len(rows) for _, rows in parts], len(runs), len(steps)

    def _break(self) -> None:
        """Leave the fast route: roll back; every unanswered frame goes the general route."""
        if self.txn is not None:
            with contextlib.suppress(Exception):
                self.txn.rollback()
        self.broken = True
        self.counts = []
        self.streamed = {}
        self._held = None

    @property
    def pending(self) -> bool:
        """Something to commit: a group has ended, or rows are inserted and not committed."""
        return self.owed > 0 or self._held is not None or (self.txn is not None and self.txn.open)

    def commit(self) -> list[Any]:
        """Commit what is inserted; the replies of the groups that ended, in order.

        The child calls it whenever nothing more is waiting in the pipe, so rows of a group
        not ended yet are committed too while the child is idle anyway: the COMMIT after the
        pipeline's last row then holds only the last frame's rows (a group's rows that are
        committed and later redone by the general route are ignored as duplicates there).
        """
        self.insert_held()
        if not self.broken and self.txn is not None:
            try:
                self.txn.commit()
            except Exception as error:
                failed: list[Any] = [error_reply(error)] * self.owed
                if self.owed:
                    self._answered()
                self._break()  # data frames of groups not ended were rolled back too
                return failed
            if not self.owed:
                return []
            done: list[Any] = [
                ok_reply(parts, _derived(runs, steps)) for parts, runs, steps in self.counts
            ]
            self.counts = []
            self._drop_answered()
            return done
        if not self.owed:
            return []
        groups = self._answered()
        replies: list[Any] = []
        start = 0
        for end in range(1, len(groups) + 1):  # consecutive groups of one derive flag together
            if end == len(groups) or groups[end][1] != groups[start][1]:
                replies += self.general(self.store, groups[start:end])
                start = end
        if not self.frames:
            self.broken = self.txn is None
        return replies

    def _drop_answered(self) -> None:
        """The fast route's _answered: the owed groups' frames leave, nothing is merged."""
        ended = self._ended_groups()
        kept = [frame for frame in self.frames if frame[2] and frame[3] not in ended]
        self._answered_frames.append(self.frames)
        self.frames = kept
        self.owed = 0

    def _ended_groups(self) -> set[int | None]:
        """The numbers of the groups whose last frame has been read."""
        return {group for _, _, data, group in self.frames if not data and group is not None}

    def release(self) -> None:
        """Free the frames answered since the last call (the child calls it after replying)."""
        self._answered_frames.clear()

    def _answered(self) -> list[tuple[Encoded, bool]]:
        """Drop the owed groups' frames (data frames of groups not ended stay); those groups,
        each merged with its data frames."""
        ended = self._ended_groups()
        data: dict[int | None, list[Encoded]] = {}
        groups: list[tuple[Encoded, bool]] = []
        kept: list[tuple[Encoded, bool, bool, int | None]] = []
        for frame in self.frames:
            encoded, derive, is_data, group = frame
            if is_data and group in ended:
                data.setdefault(group, []).append(encoded)
            elif is_data:
                kept.append(frame)
            else:
                groups.append((merged(data.pop(group, []), encoded), derive))
        self.frames = kept
        self.owed = 0
        return groups

    def finish(self) -> list[Any]:
        """End of the session (detach, or the parent gone): commit everything read; replies."""
        replies = self.commit()
        if self.frames:  # data frames whose group never ended (the parent died or gave up)
            if not self.broken and self.txn is not None:
                with contextlib.suppress(Exception):
                    self.txn.commit()
            else:
                data = [encoded for encoded, _, _, _ in self.frames]
                with contextlib.suppress(Exception):
                    self.general(self.store, [(merged(data, []), self.frames[-1][1])])
            self.frames = []
        return replies


def prepared_params(
    frames: list[Encoded], derive: bool
) -> tuple[list[tuple[str, list[Any]]], list[Any], list[Any]]:
    """Insert parameters of frames whose parts are all transitions, every item a record: per
    part, then the run and step rows they imply (persistence/_wire_rows.py). WireUnusual (or
    the conversion's own error) for anything else: the general route takes those."""
    parts: list[tuple[str, list[Any]]] = []
    runs: list[Any] = []
    steps: list[Any] = []
    for encoded in frames:
        for table, values, records in encoded:
            if table != STATE_TRANSITIONS or len(records) != len(values):
                raise WireUnusual
            rows: list[Any] = []
            if values:
                rows, more_runs, more_steps = wire_params(values, derive)
                runs += more_runs
                steps += more_steps
            parts.append((table, rows))
    return parts, runs, steps


def _plain(encoded: Encoded) -> bool:
    """A data frame as the parent sends it: one part, the transitions, every item a record."""
    return (
        len(encoded) == 1
        and encoded[0][0] == STATE_TRANSITIONS
        and len(encoded[0][1]) == len(encoded[0][2])
    )


def _derived(runs: int, steps: int) -> list[tuple[str, int]]:
    """The derived rows of one group, per table (the parent counts them per table)."""
    return [(table, count) for table, count in ((PIPELINE_RUNS, runs), (STEP_LOGS, steps)) if count]
