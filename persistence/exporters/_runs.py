"""What the exporters remember between records of one pipeline run (bounded, oldest evicted)."""

from __future__ import annotations

import collections
import uuid
from typing import Any

import attrs

from statemachine.records import TransitionRecord

# Runs remembered at once; a run whose end record never arrives is evicted oldest-first.
MAX_OPEN_RUNS = 10_000
PIPELINE_ENDS = frozenset({"COMPLETED", "FAILED", "TIMEOUT"})


@attrs.define(slots=True)
class PipelineInfo:
    """A pipeline run as its START record described it."""

    pipeline_id: str
    org_slug: str
    params: dict[str, Any] | None = None


def run_uuid(logging_id: str) -> str:
    """The logging id when it is a UUID (the engine's default), else a stable UUID5 of it."""
    try:
        return str(uuid.UUID(logging_id))
    except (ValueError, AttributeError, TypeError):
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"pipestate:{logging_id}"))


def params_of(record: TransitionRecord) -> dict[str, Any] | None:
    """Run parameters recorded in the pipeline's PENDING->RUNNING metadata (key "params")."""
    params = record.metadata.get("params") if isinstance(record.metadata, dict) else None
    return dict(params) if isinstance(params, dict) else None


class RunIndex:
    """pipeline_logging_id -> PipelineInfo, learned from pipeline records, bounded in size."""

    def __init__(self, limit: int = MAX_OPEN_RUNS) -> None:
        self._runs: collections.OrderedDict[str, PipelineInfo] = collections.OrderedDict()
        self._limit = limit
        self.evicted = 0

    def observe(self, record: TransitionRecord) -> PipelineInfo:
        """The run of `record` (remembered from a pipeline record, else a placeholder)."""
        info = self._runs.get(record.pipeline_logging_id)
        if record.entity_type == "PIPELINE":
            if info is None:
                info = self._add(record.pipeline_logging_id, record.entity_name, record.org_slug)
            info.pipeline_id = record.entity_name
            if record.from_state == "PENDING":
                info.params = params_of(record)
            return info
        if info is None:
            # The START of this pipeline was dropped or predates the exporter: name it by id.
            short = record.pipeline_logging_id[:8]
            info = self._add(record.pipeline_logging_id, f"pipeline-{short}", record.org_slug)
        return info

    def forget_if_ended(self, record: TransitionRecord) -> None:
        """Drop a pipeline's entry once its terminal record has been handled."""
        if record.entity_type == "PIPELINE" and record.to_state in PIPELINE_ENDS:
            self._runs.pop(record.pipeline_logging_id, None)

    def __len__(self) -> int:
        return len(self._runs)

    def _add(self, key: str, pipeline_id: str, org_slug: str) -> PipelineInfo:
        info = PipelineInfo(pipeline_id=pipeline_id, org_slug=org_slug)
        self._runs[key] = info
        while len(self._runs) > self._limit:
            self._runs.popitem(last=False)
            self.evicted += 1
        return info
