"""Pipelines and steps as explicit, provably legal state machines with one audit row per move."""

from statemachine._scrub import scrub_metadata, scrub_text
from statemachine.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from statemachine.entities import PipelineRun, StepRun
from statemachine.errors import IllegalTransition, InvalidDefinition, JointRuleViolation
from statemachine.ids import uuid4_str, uuid7_str
from statemachine.machines import sink_failure_count
from statemachine.records import TransitionRecord
from statemachine.sink import InMemorySink, NullSink, TransitionSink
from statemachine.spec import PipelineState, StepState

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
