"""Pipelines and steps as explicit, provably legal state machines with one audit row per move."""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier._lazy import lazy_exports

if TYPE_CHECKING:
    from statemachine._scrub import scrub_metadata, scrub_text
    from statemachine.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
    from statemachine.entities import PipelineRun, StepRun
    from statemachine.errors import IllegalTransition, InvalidDefinition, JointRuleViolation
    from statemachine.ids import uuid4_str, uuid7_str
    from statemachine.machines import sink_failure_count
    from statemachine.records import TransitionRecord
    from statemachine.sink import InMemorySink, NullSink, TransitionSink
    from statemachine.spec import PipelineState, StepState

# Public names are imported on first use: `import statemachine._x` (a light submodule) must not load
# the whole package, and `pipestate validate` / `--help` should not pay for what they never call.
_WHERE: dict[str, str] = {
    "Clock": "statemachine.clock",
    "IllegalTransition": "statemachine.errors",
    "InMemorySink": "statemachine.sink",
    "InvalidDefinition": "statemachine.errors",
    "JointRuleViolation": "statemachine.errors",
    "ManualClock": "statemachine.clock",
    "NullSink": "statemachine.sink",
    "PipelineRun": "statemachine.entities",
    "PipelineState": "statemachine.spec",
    "SYSTEM_CLOCK": "statemachine.clock",
    "StepRun": "statemachine.entities",
    "StepState": "statemachine.spec",
    "SystemClock": "statemachine.clock",
    "TransitionRecord": "statemachine.records",
    "TransitionSink": "statemachine.sink",
    "scrub_metadata": "statemachine._scrub",
    "scrub_text": "statemachine._scrub",
    "sink_failure_count": "statemachine.machines",
    "uuid4_str": "statemachine.ids",
    "uuid7_str": "statemachine.ids",
}

__all__ = [
    "SYSTEM_CLOCK",
    "Clock",
    "IllegalTransition",
    "InMemorySink",
    "InvalidDefinition",
    "JointRuleViolation",
    "ManualClock",
    "NullSink",
    "PipelineRun",
    "PipelineState",
    "StepRun",
    "StepState",
    "SystemClock",
    "TransitionRecord",
    "TransitionSink",
    "scrub_metadata",
    "scrub_text",
    "sink_failure_count",
    "uuid4_str",
    "uuid7_str",
]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
