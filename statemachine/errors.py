"""Errors the state machines raise: an illegal event, and a broken specification table."""

from __future__ import annotations

from collections.abc import Iterable

from transitions.core import MachineError


class IllegalTransition(MachineError):
    """An event was fired in a state that does not allow it; nothing changed, nothing was logged.

    Attributes: entity (the entity name), event, state, legal_events, plus kind ("pipeline" or
    "step") and entity_id (its logging id). args holds the message alone.
    """

    def __init__(
        self,
        entity: str,
        event: str,
        state: str,
        legal_events: Iterable[str],
        *,
        kind: str = "entity",
        entity_id: str | None = None,
    ) -> None:
        legal = tuple(legal_events)
        short_id = f" ({entity_id[:8]}...)" if entity_id else ""
        message = (
            f"Can't {event} {kind} {entity!r}{short_id} when it is {state}; "
            f"legal events: {', '.join(legal) if legal else 'none'}"
        )
        super().__init__(message)
        self.entity = entity
        self.event = event
        self.state = state
        self.legal_events = legal
        self.kind = kind
        self.entity_id = entity_id

    def __str__(self) -> str:
        # MachineError.__str__ returns repr(value), which wraps the sentence in quotes.
        return str(self.value)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_illegal,
            (self.entity, self.event, self.state, self.legal_events, self.kind, self.entity_id),
        )


def _rebuild_illegal(
    entity: str,
    event: str,
    state: str,
    legal_events: tuple[str, ...],
    kind: str,
    entity_id: str | None,
) -> IllegalTransition:
    return IllegalTransition(entity, event, state, legal_events, kind=kind, entity_id=entity_id)


class InvalidDefinition(ValueError):
    """A specification table is broken; `states` names the offending states."""

    def __init__(self, message: str, states: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.states = tuple(sorted(states))

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.args[0], self.states))
