"""Checks a specification table when a machine is built, naming the offending states."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from statemachine._table import MachineTable
from statemachine.errors import InvalidDefinition


def _names(states: Iterable[str]) -> str:
    return ", ".join(sorted(states))


def _reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen = {start}
    todo = deque([start])
    while todo:
        for nxt in edges.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def validate_table(table: MachineTable) -> None:
    """Raise InvalidDefinition unless `table` is a sound, deterministic, terminating machine."""
    where = f"{table.kind} table"
    states = set(table.states)
    if len(states) != len(table.states):
        dupes = {s for s in table.states if table.states.count(s) > 1}
        raise InvalidDefinition(f"{where}: states declared twice: {_names(dupes)}", dupes)
    if table.initial not in states:
        raise InvalidDefinition(
            f"{where}: initial state {table.initial!r} is not a declared state", [table.initial]
        )
    for name, subset in (("terminal", table.terminal), ("error", table.error_states)):
        unknown = set(subset) - states
        if unknown:
            raise InvalidDefinition(
                f"{where}: {name} states are not declared states: {_names(unknown)}", unknown
            )
    if not table.terminal:
        raise InvalidDefinition(f"{where}: no terminal state declared", [])

    unknown = {s for e in table.edges for s in (e.source, e.dest)} - states
    if unknown:
        raise InvalidDefinition(f"{where}: edges use unknown states: {_names(unknown)}", unknown)
    bad_events = sorted({e.event for e in table.edges if not e.event.isidentifier()})
    if bad_events:
        raise InvalidDefinition(f"{where}: event names must be identifiers: {bad_events}", [])

    seen: dict[tuple[str, str], str] = {}
    for edge in table.edges:
        key = (edge.source, edge.event)
        if key in seen:
            raise InvalidDefinition(
                f"{where}: event {edge.event!r} from {edge.source} is declared twice "
                f"(to {seen[key]} and to {edge.dest}); a machine must be deterministic",
                [edge.source],
            )
        seen[key] = edge.dest

    out_of_terminal = {e.source for e in table.edges if e.source in table.terminal}
    if out_of_terminal:
        raise InvalidDefinition(
            f"{where}: terminal states have outgoing edges: {_names(out_of_terminal)}",
            out_of_terminal,
        )

    forward: dict[str, set[str]] = {}
    for edge in table.edges:
        forward.setdefault(edge.source, set()).add(edge.dest)
    unreachable = states - _reachable(table.initial, forward)
    if unreachable:
        raise InvalidDefinition(
            f"{where}: states unreachable from {table.initial}: {_names(unreachable)}",
            unreachable,
        )

    trapped = {s for s in states - table.terminal if not _reachable(s, forward) & table.terminal}
    if trapped:
        raise InvalidDefinition(
            f"{where}: non-terminal states that can never reach a terminal state: "
            f"{_names(trapped)}",
            trapped,
        )
