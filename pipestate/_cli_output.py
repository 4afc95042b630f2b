"""Rendering for the CLI: row tables, the transition timeline, live step progress, JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipestate._cli_plain import PIPE_WIDTH, PlainColumn, print_plain, print_plain_line

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from statemachine import TransitionRecord, TransitionSink

STATE_STYLES = {
    "PENDING": "dim",
    "RUNNING": "cyan",
    "RETRYING": "yellow",
    "COMPLETED": "green",
    "FAILED": "red",
    "TIMEOUT": "magenta",
}


def _default(value: object) -> str:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def to_json(value: Any) -> str:
    """Serialise rows or results as indented JSON (datetimes as ISO strings)."""
    return json.dumps(value, indent=2, default=_default, sort_keys=True)


def console_for_output(stderr: bool = False) -> Console:
    """A rich console for CLI output; 160 columns when piped (tables stay readable in logs)."""
    from rich.console import Console

    # emoji=False: audit text is printed as stored (rich would turn ':+1:' in a reason into 👍).
    console = Console(stderr=stderr, highlight=False, soft_wrap=False, emoji=False)
    if not console.is_terminal:  # piped output: wide lines beat a cramped 80-column table
        console.width = PIPE_WIDTH
    return console


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=_default, sort_keys=True)
    return str(value)


def row_count(n: int) -> str:
    """'1 row', '3 rows'."""
    return f"{n} row" if n == 1 else f"{n} rows"


def print_rows(rows: Sequence[Mapping[str, Any]], *, title: str, wide: bool = False) -> None:
    """Print query rows as a table (all columns, in the first row's order).

    Values are never cut: a long one (a pipeline_logging_id) folds onto the next line, or,
    with wide=True, the table takes the width it needs so every row stays on one line.
    """
    columns = list(rows[0]) if rows else []
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    width = 1000 if wide else PIPE_WIDTH
    if rows:
        if print_plain(title, [PlainColumn(c) for c in columns], cells, width=width):
            return  # piped, plain text: rich's exact output without loading rich
    elif print_plain_line(f"{title}: no rows", width=width):
        return
    from rich.table import Table

    console = console_for_output()
    if wide:
        console.width = max(console.width, 1000)
    if not rows:
        console.print(f"{title}: no rows")
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row_cells in cells:
        table.add_row(*row_cells)
    console.print(table)


def _state(text: object) -> str:
    name = str(text or "")
    style = STATE_STYLES.get(name)
    return f"[{style}]{name}[/]" if style else name


# The timeline's columns: (header, justify, min_width, max_width); rich's no_wrap / ellipsis.
TIMELINE_COLUMNS = (
    PlainColumn("time", min_width=12),
    PlainColumn("entity", min_width=20),
    PlainColumn("transition", min_width=22),
    PlainColumn("secs", justify="right", min_width=6),
    PlainColumn("reason", max_width=72),
)


def timeline_cells(row: Mapping[str, Any]) -> tuple[str, str, str, str, str, str]:
    """One transition's cells as plain text: time, entity, from, to, seconds, reason."""
    when = row.get("transition_time")
    if isinstance(when, dt.datetime):
        when = when.strftime("%H:%M:%S.%f")[:-3]
    elif isinstance(when, str) and "T" in when:
        when = when.split("T", 1)[1][:12]
    seconds = row.get("duration_seconds")
    if seconds is None and row.get("duration_in_state_ms") is not None:
        seconds = row["duration_in_state_ms"] / 1000
    return (
        _cell(when),
        f"{row.get('entity_type', '')} {row.get('entity_name', '')}",
        str(row.get("from_state") or ""),
        str(row.get("to_state") or ""),
        _cell(seconds),
        _cell(row.get("reason")),
    )


def timeline_table(rows: Iterable[Mapping[str, Any]], *, title: str) -> RenderableType:
    """Return the pipeline's transitions as a rich table (time, entity, from -> to, why)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("time", no_wrap=True, min_width=12)
    table.add_column("entity", no_wrap=True, min_width=20)
    table.add_column("transition", no_wrap=True, min_width=22)
    table.add_column("secs", justify="right", no_wrap=True, min_width=6)
    table.add_column("reason", overflow="ellipsis", no_wrap=True, max_width=72)
    for row in rows:
        when, entity, source, dest, seconds, reason = timeline_cells(row)
        table.add_row(
            when, escape(entity), f"{_state(source)} -> {_state(dest)}", seconds, escape(reason)
        )
    return table


def print_timeline(rows: Sequence[Mapping[str, Any]], *, title: str, show_all: bool = True) -> None:
    """Print the transition timeline of one run, or a bounded summary of a large one."""
    from pipestate._cli_summary import TIMELINE_LIMIT

    if show_all or len(rows) <= TIMELINE_LIMIT:
        cells = [timeline_cells(row) for row in rows]
        plain = [(w, e, f"{s} -> {d}", secs, r) for w, e, s, d, secs, r in cells]
        if not print_plain(title, TIMELINE_COLUMNS, plain, width=PIPE_WIDTH):
            console_for_output().print(timeline_table(rows, title=title))
    else:
        from pipestate._cli_summary import summary_renderable

        console_for_output().print(summary_renderable(rows, title=title))


class ProgressSink:
    """A TransitionSink that forwards every record and keeps the latest state per step."""

    def __init__(self, inner: TransitionSink) -> None:
        self.inner = inner
        self.pipeline: tuple[str, str] | None = None
        self.steps: dict[str, tuple[str, int, str]] = {}

    def emit(self, record: TransitionRecord) -> None:
        """Forward the record, then remember the entity's new state."""
        self.inner.emit(record)
        if record.entity_type == "PIPELINE":
            self.pipeline = (record.entity_name, record.to_state)
        else:
            self.steps[record.entity_name] = (
                record.to_state,
                record.retry_count,
                record.error_type or "",
            )

    def __rich__(self) -> RenderableType:
        """Render the current progress (called by rich.live on each refresh)."""
        from rich.markup import escape
        from rich.table import Table

        from pipestate._cli_summary import live_rows

        name, state = self.pipeline or ("", "PENDING")
        table = Table(title=f"pipeline {escape(name)}: {_state(state)}", title_justify="left")
        for column in ("step", "state", "retries", "error_type"):
            table.add_column(column)
        for step, st, retries, error_type in live_rows(self.steps):
            table.add_row(escape(step), _state(st), retries, error_type)
        return table
