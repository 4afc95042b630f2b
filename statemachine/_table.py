"""The shape of a state-machine specification: edges and the table that holds them."""

from __future__ import annotations

from typing import NamedTuple

import attrs


class Edge(NamedTuple):
    """One legal transition: `event` moves an entity from `source` to `dest`."""

    event: str
    source: str
    dest: str
    # Default reason; "{cause}" is replaced by "<error_class>: <message>" (or the error type)
    # and "{retry_count}" by the retry count after the transition.
    reason: str
    # Whether this edge starts another attempt, so retry_count grows by one.
    increments_retry: bool = False
    # An error type the edge always records (a pipeline timeout is TIMEOUT whatever the cause).
    forced_error_type: str | None = None


@attrs.frozen(slots=True)
class MachineTable:
    """States, named state sets and legal edges of one entity kind, as plain data."""

    kind: str
    label: str
    states: tuple[str, ...]
    initial: str
    terminal: frozenset[str]
    error_states: frozenset[str]
    edges: tuple[Edge, ...]

    @property
    def events(self) -> tuple[str, ...]:
        """Every event name, in first-declared order."""
        return tuple(dict.fromkeys(edge.event for edge in self.edges))

    def legal_events(self, state: str) -> tuple[str, ...]:
        """The events allowed in `state`, in declaration order."""
        return tuple(dict.fromkeys(e.event for e in self.edges if e.source == state))

    def dest(self, state: str, event: str) -> str | None:
        """Where `event` leads from `state`, or None when the pair is illegal."""
        for edge in self.edges:
            if edge.source == state and edge.event == event:
                return edge.dest
        return None

    def edge(self, state: str, event: str) -> Edge | None:
        """The edge for (`state`, `event`), or None when the pair is illegal."""
        for edge in self.edges:
            if edge.source == state and edge.event == event:
                return edge
        return None
