"""Bounded run output: past a threshold, counts by state, the failures and the slowest steps.

A 10,000-step run has 20,000+ transitions; printing them all through rich takes seconds and buries
what a person wants to see. `--all` prints the full timeline and `--json` stays complete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType

# Up to this many transitions the full timeline is printed; above it, the summary.
TIMELINE_LIMIT = 60
SHOWN_FAILURES = 10
SHOWN_SLOWEST = 5
# The live progress table lists every step up to this many, then counts and the running ones.
LIVE_STEP_LIMIT = 25


def final_step_states(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each step's last state, in timeline order."""
    last: dict[str, str] = {}
    for row in rows:
        if row.get("entity_type") == "STEP":
            last[str(row.get("entity_name"))] = str(row.get("to_state"))
    return last


def failures(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Step rows that ended an attempt FAILED, root causes first (dependency failures last)."""
    failed = [r for r in rows if r.get("entity_type") == "STEP" and r.get("to_state") == "FAILED"]
    return sorted(failed, key=lambda r: r.get("error_type") == "DEPENDENCY_FAILURE")


def slowest(rows: Sequence[Mapping[str, Any]], count: int) -> list[Mapping[str, Any]]:
    """The `count` step attempts that spent longest in RUNNING."""
    attempts = [
        r for r in rows if r.get("entity_type") == "STEP" and r.get("from_state") == "RUNNING"
    ]
    return sorted(attempts, key=lambda r: r.get("duration_in_state_ms") or 0, reverse=True)[:count]


def summary_renderable(rows: Sequence[Mapping[str, Any]], *, title: str) -> RenderableType:
    """A compact view of a large run: what ended how, what failed, what was slow."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    from pipestate._cli_output import STATE_STYLES, timeline_table

    counts = Counter(final_step_states(rows).values())
    state_line = ", ".join(
        f"[{STATE_STYLES.get(state, '')}]{state}[/] {n}"
        if STATE_STYLES.get(state)
        else f"{state} {n}"
        for state, n in counts.most_common()
    )
    pipeline_rows = [r for r in rows if r.get("entity_type") == "PIPELINE"]
    parts: list[RenderableType] = [
        f"{escape(title)}: {len(rows)} transitions, {sum(counts.values())} steps ({state_line})",
        timeline_table(pipeline_rows, title="pipeline"),
    ]
    failed = failures(rows)
    if failed:
        table = timeline_table(failed[:SHOWN_FAILURES], title=f"failed steps ({len(failed)})")
        parts.append(table)
    slow = slowest(rows, SHOWN_SLOWEST)
    if slow:
        table = Table(title="slowest steps (time in RUNNING)", title_justify="left", min_width=40)
        table.add_column("step")
        table.add_column("ended")
        table.add_column("secs", justify="right")
        for row in slow:
            ms = row.get("duration_in_state_ms") or 0
            table.add_row(
                escape(str(row.get("entity_name"))), str(row.get("to_state")), f"{ms / 1000:g}"
            )
        parts.append(table)
    parts.append("[dim]--all prints the full timeline; --json prints everything[/]")
    return Group(*parts)


def live_rows(steps: Mapping[str, tuple[str, int, str]]) -> list[tuple[str, str, str, str]]:
    """The rows of the live progress table: every step if few, else counts and running steps."""
    if len(steps) <= LIVE_STEP_LIMIT:
        return [(name, state, str(r), e) for name, (state, r, e) in steps.items()]
    counts = Counter(state for state, _, _ in steps.values())
    rows = [(f"({n} steps)", state, "", "") for state, n in counts.most_common()]
    active = [
        (name, state, str(r), e)
        for name, (state, r, e) in steps.items()
        if state in ("RUNNING", "RETRYING")
    ]
    return rows + active[:LIVE_STEP_LIMIT]
