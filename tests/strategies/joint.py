"""Drive real PipelineRun / StepRun objects from the exploration's event labels.

A label is "pipeline.<event>", "s<i>.create" or "s<i>.<event>", optionally followed by the
exploration's " [clock stepped back]" marker, which fires the event with the wall clock an
hour behind everything stamped so far.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from statemachine import InMemorySink, PipelineRun, StepRun, TransitionRecord
from statemachine.explore import CLOCK_BACK
from statemachine.machines import PIPELINE_ENGINE, STEP_ENGINE, TransitionEngine

T0 = dt.datetime(2025, 12, 21, 12, 0, tzinfo=dt.UTC)


class SteppingClock:
    """A clock whose monotonic reading only grows while its wall clock can be set back."""

    def __init__(self) -> None:
        self._ns = itertools.count(1_000_000_000, 1_000_000)
        self.wall = T0
        self.back = False

    def monotonic_ns(self) -> int:
        """One millisecond later at every reading."""
        return next(self._ns)

    def now(self) -> dt.datetime:
        """The wall clock: one millisecond later per reading, or an hour early once when set."""
        if self.back:
            self.back = False
            return self.wall - dt.timedelta(hours=1)
        self.wall += dt.timedelta(milliseconds=1)
        return self.wall


def new_step(run: PipelineRun, name: str, engine: TransitionEngine) -> StepRun:
    """StepRun.create, with creation checked by `engine` (a mutant's rules, say)."""
    step = StepRun(
        entity_name=name,
        org_slug=run.org_slug,
        pipeline_logging_id=run.pipeline_logging_id,
        step_logging_id=f"{run.pipeline_logging_id}-{name}",
        sink=run.sink,
        clock=run.clock,
        id_source=run.id_source,
        entered_monotonic_ns=run.clock.monotonic_ns(),
        entered_at=run.clock.now(),
        pipeline=run,
    )
    engine.register(step, run)
    return step


class Replay:
    """One pipeline and its steps, driven by exploration labels through the given engines."""

    def __init__(
        self,
        n_steps: int,
        pipeline_engine: TransitionEngine = PIPELINE_ENGINE,
        step_engine: TransitionEngine = STEP_ENGINE,
    ) -> None:
        self.sink = InMemorySink()
        self.clock = SteppingClock()
        ids = itertools.count(1)
        self.run = PipelineRun.create(
            "p",
            org_slug="acme",
            sink=self.sink,
            clock=self.clock,
            id_source=lambda: f"00000000-0000-4000-8000-{next(ids):012x}",
        )
        self.n_steps = n_steps
        self.steps: dict[str, StepRun] = {}
        self.engines = {"PIPELINE": pipeline_engine, "STEP": step_engine}

    def fire(self, label: str) -> TransitionRecord | StepRun:
        """Fire one label; IllegalTransition propagates when the engine refuses it."""
        self.clock.back = label.endswith(CLOCK_BACK)
        who, _, event = label.removesuffix(CLOCK_BACK).partition(".")
        try:
            if who == "pipeline":
                return self.engines["PIPELINE"].fire(self.run, event)
            if event == "create":
                self.steps[who] = new_step(self.run, who, self.engines["STEP"])
                return self.steps[who]
            entity: Any = self.steps[who]
            return self.engines["STEP"].fire(entity, event)
        finally:
            self.clock.back = False

    def states(self) -> tuple[str, ...]:
        """(pipeline state, s0 state, s1 state, ...) with ABSENT for steps not created."""
        steps = (
            self.steps[f"s{i}"].state if f"s{i}" in self.steps else "ABSENT"
            for i in range(self.n_steps)
        )
        return (self.run.state, *steps)
