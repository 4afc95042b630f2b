"""Checks a transition that someone logs by hand against the same tables the machines obey.

`MetadataLogger.log_state_transition(...)` takes any row; this check refuses the ones no machine
could have written (unknown entity type, unknown state, an edge missing from the table) with
an IllegalLoggedTransition. One row alone cannot show whether a chain is continuous (does the
entity's previous row end where this one starts?): `pipestate verify` checks stored chains.
"""

from __future__ import annotations

from statemachine.errors import IllegalLoggedTransition
from statemachine.spec import TABLES

_EDGES = {kind: {(e.source, e.dest) for e in t.edges} for kind, t in TABLES.items()}


def _text(value: object) -> str:
    """An enum's value, else str(); None stays visible as 'None'."""
    return str(getattr(value, "value", value))


def check_logged_transition(
    entity_type: object,
    from_state: object,
    to_state: object,
    *,
    entity_name: object = None,
    entity_id: object = None,
) -> None:
    """Raise IllegalLoggedTransition unless (entity_type, from_state -> to_state) is an edge."""
    kind, source, dest = _text(entity_type), _text(from_state), _text(to_state)
    name = _text(entity_name)
    ident = None if entity_id is None else _text(entity_id)
    table = TABLES.get(kind)

    def refuse(message: str, rule: str, legal: tuple[str, ...] = ()) -> IllegalLoggedTransition:
        return IllegalLoggedTransition(
            message,
            entity=name,
            kind=kind.lower(),
            state=source,
            to_state=dest,
            legal_events=legal,
            entity_id=ident,
            rule=rule,
        )

    if table is None:
        raise refuse(
            f"Can't log a transition of entity_type {kind!r} ({name!r}): expected one of "
            f"{', '.join(sorted(TABLES))}",
            "known-entity-type",
        )
    for field, state in (("from_state", source), ("to_state", dest)):
        if state not in table.states:
            raise refuse(
                f"Can't log {kind} {name!r} moving {source} -> {dest}: {field} {state!r} is "
                f"not a {kind} state (expected one of {', '.join(table.states)})",
                "known-state",
            )
    if (source, dest) not in _EDGES[kind]:
        legal = sorted(e.dest for e in table.edges if e.source == source)
        raise refuse(
            f"Can't log {kind} {name!r} moving {source} -> {dest}: not an edge of the {kind} "
            f"table; legal from {source}: {', '.join(legal) if legal else 'none (terminal)'}",
            "legal-edge",
            table.legal_events(source),
        )
