"""The specification: states, state sets and legal edges of pipelines and steps, as data.

Everything else (the `transitions` machines, the legality checks, the docs table and the
Mermaid diagrams) is built from the two tables below.
"""

from __future__ import annotations

from enum import StrEnum

from statemachine._table import Edge, MachineTable

PENDING = "PENDING"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
TIMEOUT = "TIMEOUT"
RETRYING = "RETRYING"


class PipelineState(StrEnum):
    """The states of a pipeline run (value == name)."""

    PENDING = PENDING
    RUNNING = RUNNING
    COMPLETED = COMPLETED
    FAILED = FAILED
    TIMEOUT = TIMEOUT


class StepState(StrEnum):
    """The states of a step run (value == name)."""

    PENDING = PENDING
    RUNNING = RUNNING
    COMPLETED = COMPLETED
    FAILED = FAILED
    RETRYING = RETRYING


PIPELINE = MachineTable(
    kind="PIPELINE",
    label="Pipeline",
    states=tuple(s.value for s in PipelineState),
    initial=PENDING,
    terminal=frozenset({COMPLETED, FAILED, TIMEOUT}),
    error_states=frozenset({FAILED, TIMEOUT}),
    edges=(
        Edge("start", PENDING, RUNNING, "Pipeline started"),
        Edge("complete", RUNNING, COMPLETED, "Pipeline completed successfully"),
        Edge("fail", RUNNING, FAILED, "Pipeline failed with {cause}"),
        Edge("time_out", RUNNING, TIMEOUT, "Pipeline timed out with {cause}", False, "TIMEOUT"),
    ),
)

STEP = MachineTable(
    kind="STEP",
    label="Step",
    states=tuple(s.value for s in StepState),
    initial=PENDING,
    terminal=frozenset({COMPLETED, FAILED}),
    error_states=frozenset({FAILED, RETRYING}),
    edges=(
        Edge("start", PENDING, RUNNING, "Step started"),
        Edge("complete", RUNNING, COMPLETED, "Step completed successfully"),
        # A step timeout is FAILED with error_type TIMEOUT, as the seed specifies.
        Edge("fail", RUNNING, FAILED, "Step failed with {cause}"),
        Edge("retry", RUNNING, RETRYING, "Step will retry after {cause}"),
        Edge("start", RETRYING, RUNNING, "Step retry attempt {retry_count} started", True),
        # Never started: an upstream step failed, or the pipeline ended first.
        Edge("fail", PENDING, FAILED, "Step failed before it started with {cause}"),
        # The pipeline ended while the step waited to retry.
        Edge("fail", RETRYING, FAILED, "Step failed while waiting to retry with {cause}"),
    ),
)

TABLES: dict[str, MachineTable] = {PIPELINE.kind: PIPELINE, STEP.kind: STEP}
