"""Mutation tests: machines rebuilt from broken tables are caught by the validator or the oracle."""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs
import pytest

from statemachine import InMemorySink, InvalidDefinition, ManualClock, PipelineRun, StepRun
from statemachine._table import Edge, MachineTable
from statemachine._validate import validate_table
from statemachine.machines import TransitionEngine
from statemachine.records import TransitionRecord
from statemachine.spec import PIPELINE, STEP
from tests.strategies.events import (
    EVENTS,
    EXPECTED,
    Oracle,
    running_pipeline,
    sequential_ids,
)


def _fire_with(engine: TransitionEngine) -> Any:
    def fire(entity: Any, event: str, kwargs: dict[str, Any]) -> TransitionRecord:
        return engine.fire(entity, event, **kwargs)

    return fire


def _new_entity(kind: str, sink: InMemorySink, clock: ManualClock) -> Any:
    if kind == "PIPELINE":
        return PipelineRun.create(
            "p", org_slug="acme", sink=sink, clock=clock, id_source=sequential_ids()
        )
    # Joint rule 1: a step moves only under a RUNNING pipeline (its start row goes elsewhere).
    parent = running_pipeline("p", org_slug="acme", sink=sink, clock=clock)
    return StepRun.create("s", pipeline=parent)


def explore(engine: TransitionEngine) -> None:
    """Walk every state the engine can reach and fire every event there through the oracle.

    Raises AssertionError at the first broken invariant; returns when the engine conforms.
    """
    kind = engine.table.kind
    fire = _fire_with(engine)
    paths: deque[list[str]] = deque([[]])
    seen: set[str] = set()
    while paths:
        path = paths.popleft()
        for event in EVENTS[kind]:
            sink, clock = InMemorySink(), ManualClock()
            oracle = Oracle(kind, sink, clock)
            entity = _new_entity(kind, sink, clock)
            oracle.track(entity)
            for step in [*path, event]:
                oracle.advance(1_250)
                oracle.fire(entity, step, {}, fire)
            if entity.state not in seen:
                seen.add(entity.state)
                paths.append([*path, event])


def _without(table: MachineTable, index: int) -> MachineTable:
    edges = table.edges[:index] + table.edges[index + 1 :]
    return attrs.evolve(table, edges=edges)


def _removals() -> list[tuple[str, MachineTable]]:
    return [
        (f"{t.kind}-remove-{e.source}-{e.event}", _without(t, i))
        for t in (PIPELINE, STEP)
        for i, e in enumerate(t.edges)
    ]


def _terminal_additions() -> list[tuple[str, MachineTable]]:
    out = []
    for table in (PIPELINE, STEP):
        for state in sorted(table.terminal):
            for event in EVENTS[table.kind]:
                if event == "time_out" and table.kind == "STEP":
                    continue
                extra = Edge(event, state, "RUNNING", "reopened")
                out.append(
                    (
                        f"{table.kind}-add-{state}-{event}",
                        attrs.evolve(table, edges=(*table.edges, extra)),
                    )
                )
    return out


_MUTANTS = _removals() + _terminal_additions()


class TestUnmutatedTables:
    """The real tables pass both the validator and the oracle."""

    @pytest.mark.parametrize("table", [PIPELINE, STEP], ids=lambda t: t.kind)
    def test_real_table_conforms(self, table: MachineTable) -> None:
        """The exploration finds no broken invariant on the shipped specification."""
        validate_table(table)
        explore(TransitionEngine(table))


class TestMutants:
    """Every single-edge mutation is caught."""

    @pytest.mark.parametrize(("name", "table"), _MUTANTS, ids=[n for n, _ in _MUTANTS])
    def test_properties_catch_mutant(self, name: str, table: MachineTable) -> None:
        """Even with validation off, the oracle's invariants fail on the mutated machine."""
        engine = TransitionEngine(table, validate=False)
        with pytest.raises(AssertionError):
            explore(engine)

    @pytest.mark.parametrize(
        ("name", "table"),
        [m for m in _MUTANTS if "-add-" in m[0]],
        ids=[n for n, _ in _MUTANTS if "-add-" in n],
    )
    def test_validator_rejects_edges_out_of_terminal_states(
        self, name: str, table: MachineTable
    ) -> None:
        """An edge out of a terminal state fails validation, naming that state."""
        source = table.edges[-1].source
        with pytest.raises(InvalidDefinition, match="terminal") as info:
            TransitionEngine(table)
        assert info.value.states == (source,)

    @pytest.mark.parametrize(
        ("name", "table", "unreachable"),
        [
            (
                "PIPELINE-remove-start",
                _without(PIPELINE, 0),
                ("COMPLETED", "FAILED", "RUNNING", "TIMEOUT"),
            ),
            ("PIPELINE-remove-complete", _without(PIPELINE, 1), ("COMPLETED",)),
            ("PIPELINE-remove-time_out", _without(PIPELINE, 3), ("TIMEOUT",)),
            ("STEP-remove-retry", _without(STEP, 3), ("RETRYING",)),
        ],
    )
    def test_validator_names_unreachable_states(
        self, name: str, table: MachineTable, unreachable: tuple[str, ...]
    ) -> None:
        """Removing the only way into a state fails validation, naming the unreachable states."""
        with pytest.raises(InvalidDefinition, match="unreachable") as info:
            TransitionEngine(table)
        assert info.value.states == unreachable

    def test_every_mutant_differs_from_the_specification(self) -> None:
        """Each mutant's edge set differs from the issue's table, so catching it is required."""
        for name, table in _MUTANTS:
            edges = {(e.source, e.event): e.dest for e in table.edges}
            assert edges != EXPECTED[table.kind], name
