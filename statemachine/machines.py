"""One shared `transitions.Machine` per entity kind, built from a specification table.

Entities are never registered as models: each event is fired with
`machine.events[name].trigger(entity, ...)`, which costs no memory per entity. The per-edge
`after` callback computes the time spent in the state left, builds the TransitionRecord,
classifies errors and emits the record: nothing else creates a transition row.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import TYPE_CHECKING, Any

from transitions.core import EventData, Machine, MachineError

from statemachine._failure import error_fields
from statemachine._scrub import scrub_metadata, scrub_optional
from statemachine._table import Edge, MachineTable
from statemachine._validate import validate_table
from statemachine.errors import IllegalTransition, JointRuleViolation
from statemachine.joint import ABSENT, CREATE, JOINT_RULES, JointRule, rules_for
from statemachine.records import TransitionRecord, trusted_record
from statemachine.spec import PENDING, PIPELINE, STEP

if TYPE_CHECKING:
    from collections.abc import Callable

    from classifier import ErrorType, RetryPolicy

# At INFO every trigger formats log lines and costs about 5 times more.
logging.getLogger("transitions").setLevel(logging.WARNING)


class _CompiledEdge:
    """An Edge with what the hot path needs precomputed."""

    __slots__ = (
        "dest",
        "event",
        "forced_error_type",
        "increments_retry",
        "is_error",
        "reason",
        "source",
        "static_reason",
    )

    def __init__(self, edge: Edge, table: MachineTable) -> None:
        self.event = edge.event
        self.source = edge.source
        self.dest = edge.dest
        self.reason = edge.reason
        self.static_reason = None if "{" in edge.reason else edge.reason
        self.increments_retry = edge.increments_retry
        self.forced_error_type = edge.forced_error_type
        self.is_error = edge.dest in table.error_states


def build_machine(
    table: MachineTable,
    on_edge: Callable[[_CompiledEdge, EventData], None] | None = None,
    *,
    validate: bool = True,
) -> Machine:
    """Build a model-less, strict, synchronous Machine from `table` (checked first)."""
    if validate:
        validate_table(table)
    transitions = []
    for edge in table.edges:
        spec: dict[str, Any] = {"trigger": edge.event, "source": edge.source, "dest": edge.dest}
        if on_edge is not None:
            spec["after"] = [functools.partial(on_edge, _CompiledEdge(edge, table))]
        transitions.append(spec)
    return Machine(
        model=None,
        states=list(table.states),
        initial=table.initial,
        transitions=transitions,
        auto_transitions=False,
        send_event=True,
        ignore_invalid_triggers=False,
        name=table.kind,
    )


def direct_edges(machine: Machine, on_edge: Callable[..., None]) -> dict[tuple[str, str], Any]:
    """(source, event) -> _CompiledEdge for edges whose only callback is `on_edge`, else {}.

    Firing such an edge is: set the state, call `on_edge`. The engine then skips trigger()'s
    event objects, empty callback lists and disabled log calls (most of a step's CPU). Any
    other callback anywhere in the machine disables the shortcut for every edge.
    """
    machine_hooks = (
        machine.prepare_event,
        machine.before_state_change,
        machine.after_state_change,
        machine.finalize_event,
        machine.on_exception,
        machine.on_final,
    )
    if machine.has_queue or any(machine_hooks):
        return {}
    if any(s.on_enter or s.on_exit or s.final for s in machine.states.values()):
        return {}
    direct: dict[tuple[str, str], Any] = {}
    for name, event in machine.events.items():
        for source, found in event.transitions.items():
            if len(found) != 1:
                return {}
            t = found[0]
            hook = t.after[0] if len(t.after) == 1 else None
            if t.prepare or t.before or t.conditions or not isinstance(hook, functools.partial):
                return {}
            edge = hook.args[0] if len(hook.args) == 1 and not hook.keywords else None
            if hook.func != on_edge or not isinstance(edge, _CompiledEdge):
                return {}
            if (edge.source, edge.event, edge.dest) != (source, name, t.dest):
                return {}
            direct[(source, name)] = edge
    return direct


class TransitionEngine:
    """Fires events on entities of one kind through one shared Machine and emits the records.

    Besides the table, the engine enforces the joint rules (statemachine/joint.py): `rules`
    are checked before an edge fires, and with `stamp` every record of a pipeline run is
    stamped no earlier than the run's latest record (rule 5). Tests build engines with rules
    removed or weakened to prove each rule is needed.
    """

    def __init__(
        self,
        table: MachineTable,
        *,
        validate: bool = True,
        rules: tuple[JointRule, ...] = JOINT_RULES,
        stamp: bool = True,
    ) -> None:
        self.table = table
        self.rules = rules
        self.stamp = stamp
        self.machine = build_machine(table, self._on_edge, validate=validate)
        self._events = dict(self.machine.events)
        self._direct = direct_edges(self.machine, self._on_edge)
        self._legal = {state: table.legal_events(state) for state in table.states}
        # (source, event) -> the joint rules guarding that edge; most edges have one or none.
        self._guards = {
            (e.source, e.event): rules_for(table.kind, e.source, e.dest, rules) for e in table.edges
        }
        self._create_guards = rules_for(table.kind, ABSENT, PENDING, rules)
        self._is_step = table.kind == "STEP"
        self._kind = table.kind
        self._kind_word = table.label.lower()
        self._failure_lock = threading.Lock()
        self.sink_failures = 0

    def legal_events(self, state: str) -> tuple[str, ...]:
        """The events the table allows in `state`."""
        return self._legal.get(state, ())

    def illegal(self, entity: Any, event: str) -> IllegalTransition:
        """The IllegalTransition for firing `event` on `entity` in its current state."""
        entity_id = entity.step_logging_id if self._is_step else entity.pipeline_logging_id
        return IllegalTransition(
            entity.entity_name,
            event,
            entity.state,
            self.legal_events(entity.state),
            kind=self._kind_word,
            entity_id=entity_id,
        )

    def fire(
        self,
        entity: Any,
        event: str,
        error: BaseException | None = None,
        error_type: ErrorType | str | None = None,
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
        policy: RetryPolicy | None = None,
    ) -> TransitionRecord:
        """Perform `event` on `entity` and return the record emitted; raise IllegalTransition."""
        box: list[TransitionRecord] = []
        trigger = self._events.get(event)
        # Lock order (see statemachine/joint.py): the pipeline's lock, then the step's. Holding
        # the pipeline's lock freezes its steps, so a rule's check and the move are one step.
        run = entity._pipeline if self._is_step else entity
        with run._lock if run is not None else entity._lock, entity._lock:
            if trigger is None:
                raise self.illegal(entity, event)
            guards = self._guards.get((entity.state, event))
            if guards and run is not None:
                self._check(entity, run, event, guards)
            try:
                edge = self._direct.get((entity.state, event))
                if edge is not None:
                    # What trigger() would do with no other callback: move, then the edge's
                    # `after` (which moves back if it raises). Saves ~20 calls per event.
                    entity.state = edge.dest
                    self._record(edge, entity, box, error, error_type, reason, metadata, policy)
                else:  # an illegal event (or a machine with more callbacks) takes the long way
                    trigger.trigger(entity, box, error, error_type, reason, metadata, policy)
            except MachineError as exc:
                if isinstance(exc, IllegalTransition) or event in self.legal_events(entity.state):
                    raise
                raise self.illegal(entity, event) from None
        if not box:  # unreachable while the table has no conditions; never return a guess
            raise RuntimeError(f"{event!r} on {entity.entity_name!r} produced no record.")
        return box[0]

    def register(self, step: Any, run: Any) -> None:
        """Attach a new step to its pipeline run, refusing it when a rule forbids creation."""
        with run._lock:
            if self._create_guards:
                self._check(step, run, CREATE, self._create_guards, source=ABSENT)
            run._steps.append(step)

    def _check(
        self,
        entity: Any,
        run: Any,
        event: str,
        guards: tuple[JointRule, ...],
        *,
        source: str | None = None,
    ) -> None:
        """Raise JointRuleViolation for the first guard the other machine's state breaks."""
        for rule in guards:
            if self._is_step:
                if run.state in rule.pipeline_in:
                    continue
                blocking = f"its pipeline is {run.state}"
            else:
                stuck = [s for s in run._steps if s.state not in rule.steps_in]
                if not stuck:
                    continue
                listed = ", ".join(f"{s.entity_name}={s.state}" for s in stuck[:5])
                more = f" and {len(stuck) - 5} more" if len(stuck) > 5 else ""
                blocking = f"steps not {'/'.join(sorted(rule.steps_in))}: {listed}{more}"
            raise JointRuleViolation(
                entity.entity_name,
                event,
                entity.state if source is None else source,
                self.legal_events(entity.state),
                kind=self._kind_word,
                entity_id=entity.step_logging_id if self._is_step else entity.pipeline_logging_id,
                rule=rule.name,
                rule_number=rule.number,
                rule_text=rule.text,
                blocking=blocking,
            )

    def _on_edge(self, edge: _CompiledEdge, event_data: EventData) -> None:
        self._record(edge, event_data.model, *event_data.args)

    def _record(
        self,
        edge: _CompiledEdge,
        model: Any,
        box: list[TransitionRecord],
        error: BaseException | None,
        error_type: ErrorType | str | None,
        reason: str | None,
        metadata: dict[str, Any] | None,
        policy: RetryPolicy | None,
    ) -> None:
        """Build, stamp and emit the record of `edge` on `model`, already moved to edge.dest."""
        clock = model.clock
        now_ns = clock.monotonic_ns()
        now = clock.now()
        run = model._pipeline if self._is_step else model
        # Rule 5: never stamp a record of this run before the run's latest one (held: its lock).
        if self.stamp and run is not None and run._latest_at is not None and now < run._latest_at:
            now = run._latest_at
        elapsed_ns = now_ns - model.entered_monotonic_ns
        retry_count = model.retry_count + 1 if edge.increments_retry else model.retry_count
        err_type: str | None
        err_msg: str | None
        stack: str | None
        try:
            if edge.is_error:
                reason, err_type, err_msg, stack, meta = error_fields(
                    template=edge.reason,
                    error=error,
                    error_type=edge.forced_error_type or error_type,
                    step_name=model.entity_name if self._is_step else None,
                    retry_count=retry_count,
                    reason=reason,
                    metadata=metadata,
                    policy=policy,
                )
            else:
                err_type = err_msg = stack = None
                # Caller-given text is scrubbed (secrets, size, surrogates); the defaults are ours.
                meta = scrub_metadata(dict(metadata)) if metadata else {}
                if reason is None:
                    reason = edge.static_reason or edge.reason.format(retry_count=retry_count)
                else:
                    reason = scrub_optional(reason)
            record = trusted_record(
                model.id_source(),
                model.org_slug,
                model.pipeline_logging_id,
                model.step_logging_id if self._is_step else None,
                self._kind,
                model.entity_name,
                edge.source,
                edge.dest,
                now,
                reason,
                err_type,
                err_msg,
                stack,
                retry_count,
                elapsed_ns // 1_000_000 if elapsed_ns > 0 else 0,
                meta,
                model.trigger_type,
                model.user_id,
            )
        except BaseException:
            # No record, no transition: undo the state change transitions already made.
            model.state = edge.source
            raise
        model.entered_monotonic_ns = now_ns
        model.entered_at = now
        model.retry_count = retry_count
        if run is not None:
            run._latest_at = now
        box.append(record)
        try:
            model.sink.emit(record)
        except Exception as exc:  # logging never fails a pipeline: the transition stands
            self._sink_failed(model.sink, record, exc)

    def _sink_failed(self, sink: object, record: TransitionRecord, exc: Exception) -> None:
        with self._failure_lock:
            self.sink_failures += 1
        # structlog (with its dev renderer) costs ~150 ms to import: load it only on failure.
        from statemachine._log import lazy_logger

        lazy_logger("statemachine").warning(
            "transition_sink_failed",
            sink=type(sink).__qualname__,
            transition_id=record.transition_id,
            entity_type=record.entity_type,
            entity_name=record.entity_name,
            from_state=record.from_state,
            to_state=record.to_state,
            error=repr(exc),
        )


PIPELINE_ENGINE = TransitionEngine(PIPELINE)
STEP_ENGINE = TransitionEngine(STEP)
ENGINES: dict[str, TransitionEngine] = {"PIPELINE": PIPELINE_ENGINE, "STEP": STEP_ENGINE}


def sink_failure_count() -> int:
    """How many sink.emit calls have raised since import, over both machines."""
    return PIPELINE_ENGINE.sink_failures + STEP_ENGINE.sink_failures
