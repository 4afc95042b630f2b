"""Errors the state machines raise: an illegal event, and a broken specification table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from transitions.core import MachineError


class IllegalTransition(MachineError):
    """An event was fired in a state that does not allow it; nothing changed, nothing was logged.

    Attributes: entity (the entity name), event, state, legal_events, plus kind ("pipeline" or
    "step") and entity_id (its logging id). args holds the message alone. `rule` is None for an
    edge missing from the table; subclasses set it to the name of the rule that refused.
    """

    rule: str | None = None

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


class JointRuleViolation(IllegalTransition):
    """The edge exists, but a joint rule (statemachine/joint.py) forbids it right now.

    Extra attributes: rule (its name), rule_number, and blocking (what in the other machine
    stands in the way, e.g. "pipeline is COMPLETED" or "steps not COMPLETED: load=RUNNING").
    """

    def __init__(
        self,
        entity: str,
        event: str,
        state: str,
        legal_events: Iterable[str],
        *,
        kind: str,
        entity_id: str | None,
        rule: str,
        rule_number: int,
        rule_text: str,
        blocking: str,
    ) -> None:
        super().__init__(entity, event, state, legal_events, kind=kind, entity_id=entity_id)
        short_id = f" ({entity_id[:8]}...)" if entity_id else ""
        message = (
            f"Can't {event} {kind} {entity!r}{short_id} from {state}: {blocking}; "
            f"rule {rule_number} ({rule}): {rule_text}"
        )
        self.value = message
        self.args = (message,)
        self.rule = rule
        self.rule_number = rule_number
        self.rule_text = rule_text
        self.blocking = blocking

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_joint,
            (
                self.entity,
                self.event,
                self.state,
                self.legal_events,
                self.kind,
                self.entity_id,
                self.rule,
                self.rule_number,
                self.rule_text,
                self.blocking,
            ),
        )


def _rebuild_joint(*args: Any) -> JointRuleViolation:
    entity, event, state, legal, kind, entity_id, rule, number, text, blocking = args
    return JointRuleViolation(
        entity,
        event,
        state,
        legal,
        kind=kind,
        entity_id=entity_id,
        rule=rule,
        rule_number=number,
        rule_text=text,
        blocking=blocking,
    )


class IllegalLoggedTransition(IllegalTransition):
    """A hand-logged transition (log_state_transition) that no machine could have made.

    `rule` is "known-entity-type", "known-state" or "legal-edge"; `event` is "log"; `state` is
    the from_state given and `to_state` the to_state given.
    """

    def __init__(
        self,
        message: str,
        *,
        entity: str,
        kind: str,
        state: str,
        to_state: str,
        legal_events: Iterable[str],
        entity_id: str | None,
        rule: str,
    ) -> None:
        super().__init__(entity, "log", state, legal_events, kind=kind, entity_id=entity_id)
        self.value = message
        self.args = (message,)
        self.to_state = to_state
        self.rule = rule

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_logged,
            (
                self.value,
                self.entity,
                self.kind,
                self.state,
                self.to_state,
                self.legal_events,
                self.entity_id,
                self.rule,
            ),
        )


def _rebuild_logged(*args: Any) -> IllegalLoggedTransition:
    message, entity, kind, state, to_state, legal, entity_id, rule = args
    return IllegalLoggedTransition(
        message,
        entity=entity,
        kind=kind,
        state=state,
        to_state=to_state,
        legal_events=legal,
        entity_id=entity_id,
        rule=rule,
    )


class InvalidDefinition(ValueError):
    """A specification table is broken; `states` names the offending states."""

    def __init__(self, message: str, states: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.states = tuple(sorted(states))

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.args[0], self.states))
