"""OpenLineage exporter: one RunEvent per lifecycle change, sent by the openlineage-python client.

The client is configured by its own means (openlineage.yml, OPENLINEAGE_URL, OPENLINEAGE__*
variables), so every transport it supports works without code here. Mapping (docs/lineage.md):
namespace = org slug; job name = pipeline id, or "pipeline_id.step_id" for a step; run id = the
pipeline or step logging id; steps carry the parent-run facet of their pipeline run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from classifier import redact
from persistence.exporters._runs import PipelineInfo, RunIndex, run_uuid
from persistence.fanout import ExportFailed
from statemachine.records import TransitionRecord

# (entity type, from state, to state) -> OpenLineage eventType. Every edge of both machines is
# here (tests walk statemachine.spec); OpenLineage has no TIMEOUT or RETRYING, so:
# - TIMEOUT ends a run as FAIL (the pipestate_transition facet keeps toState TIMEOUT);
# - a failed attempt that will be retried, and the retry's start, are RUNNING events: the run
#   goes on, and the failed attempt's error rides along in the errorMessage facet;
# - a step that never started (an upstream failure, the pipeline ending first) is one ABORT
#   event with no START: it never ran, and its reason says why (DEPENDENCY_FAILURE, ...).
EVENT_TYPES: Mapping[tuple[str, str, str], str] = {
    ("PIPELINE", "PENDING", "RUNNING"): "START",
    ("PIPELINE", "RUNNING", "COMPLETED"): "COMPLETE",
    ("PIPELINE", "RUNNING", "FAILED"): "FAIL",
    ("PIPELINE", "RUNNING", "TIMEOUT"): "FAIL",
    ("STEP", "PENDING", "RUNNING"): "START",
    ("STEP", "RUNNING", "COMPLETED"): "COMPLETE",
    ("STEP", "RUNNING", "FAILED"): "FAIL",
    ("STEP", "RUNNING", "RETRYING"): "RUNNING",
    ("STEP", "RETRYING", "RUNNING"): "RUNNING",
    ("STEP", "PENDING", "FAILED"): "ABORT",
    ("STEP", "RETRYING", "FAILED"): "FAIL",
}
# A cancelled entity still ends FAILED (metadata "cancelled": true): that is an ABORT.
CANCELLED_EVENT_TYPE = "ABORT"
FACET_TRANSITION = "pipestate_transition"
FACET_PARAMS = "pipestate_params"
PRODUCER = "urn:pipestate:openlineage-exporter"
SCHEMA_TRANSITION = "urn:pipestate:facets:PipestateTransitionRunFacet:1"
SCHEMA_PARAMS = "urn:pipestate:facets:PipestateParamsRunFacet:1"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pipestate")
    except PackageNotFoundError:
        return "0"


def event_type_of(record: TransitionRecord) -> str | None:
    """The OpenLineage eventType of a record's edge (None for an edge not in the table)."""
    kind = EVENT_TYPES.get((record.entity_type, record.from_state, record.to_state))
    if kind in ("FAIL", "ABORT") and record.metadata.get("cancelled") is True:
        return CANCELLED_EVENT_TYPE
    return kind


def job_name(info: PipelineInfo, record: TransitionRecord) -> str:
    """Pipeline id for a pipeline, "pipeline_id.step_id" for a step."""
    if record.entity_type == "PIPELINE":
        return record.entity_name
    return f"{info.pipeline_id}.{record.entity_name}"


def _text(value: str | None) -> str | None:
    """Redact once more on the way out: records are scrubbed already, this costs little."""
    return None if value is None else redact(value)


def transition_facet(record: TransitionRecord) -> dict[str, Any]:
    """The pipestate_transition facet's fields: the audit row's facts, camelCased."""
    meta = record.metadata
    fields: dict[str, Any] = {
        "transitionId": record.transition_id,
        "entityType": record.entity_type,
        "fromState": record.from_state,
        "toState": record.to_state,
        "reason": _text(record.reason),
        "retryCount": record.retry_count,
        "durationInStateMs": record.duration_in_state_ms,
        "triggerType": record.trigger_type,
        "errorType": record.error_type,
        "errorClass": meta.get("error_class"),
        "isRetryable": meta.get("is_retryable"),
        "nextRetryDelaySeconds": meta.get("next_retry_delay_seconds"),
        "cancelled": meta.get("cancelled") is True,
        "cancelSource": meta.get("cancel_source"),
    }
    return {key: value for key, value in fields.items() if value is not None}


class OpenLineageMapper:
    """Turns TransitionRecords into openlineage-python RunEvents (stateful only for run names)."""

    def __init__(self, runs: RunIndex | None = None) -> None:
        from openlineage.client import __version__ as client_version

        self.runs = runs if runs is not None else RunIndex()
        self._engine = {"name": "pipestate", "version": _version(), "adapter": client_version}

    def to_event(self, record: TransitionRecord) -> Any:
        """The RunEvent for one record, or None when its edge emits nothing."""
        kind = event_type_of(record)
        info = self.runs.observe(record)
        try:
            if kind is None:
                return None
            return self._event(record, kind, info)
        finally:
            self.runs.forget_if_ended(record)

    def _event(self, record: TransitionRecord, kind: str, info: PipelineInfo) -> Any:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import job_type_job, processing_engine_run

        is_step = record.entity_type == "STEP"
        logging_id = record.step_logging_id if is_step else record.pipeline_logging_id
        run_facets: dict[str, Any] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=self._engine["version"],
                name=self._engine["name"],
                openlineageAdapterVersion=self._engine["adapter"],
                producer=PRODUCER,
            ),
            FACET_TRANSITION: _custom_facet(SCHEMA_TRANSITION, transition_facet(record)),
        }
        if record.error_type is not None:
            run_facets["errorMessage"] = self._error_facet(record)
        if is_step:
            run_facets["parent"] = self._parent_facet(record, info)
        elif info.params is not None:
            run_facets[FACET_PARAMS] = _custom_facet(SCHEMA_PARAMS, {"params": info.params})
        job_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH",
                integration="PIPESTATE",
                jobType="STEP" if is_step else "PIPELINE",
                producer=PRODUCER,
            )
        }
        return RunEvent(
            eventType=RunState(kind),
            eventTime=record.transition_time.isoformat(),
            run=Run(runId=run_uuid(logging_id or record.pipeline_logging_id), facets=run_facets),
            job=Job(namespace=record.org_slug, name=job_name(info, record), facets=job_facets),
            producer=PRODUCER,
            inputs=[],
            outputs=[],
        )

    @staticmethod
    def _error_facet(record: TransitionRecord) -> Any:
        from openlineage.client.facet_v2 import error_message_run

        message = record.error_message or record.reason or str(record.error_type)
        return error_message_run.ErrorMessageRunFacet(
            message=_text(f"{record.error_type}: {message}") or "",
            programmingLanguage="python",
            stackTrace=_text(record.stack_trace_truncated),
            producer=PRODUCER,
        )

    @staticmethod
    def _parent_facet(record: TransitionRecord, info: PipelineInfo) -> Any:
        from openlineage.client.facet_v2 import parent_run

        run_id = run_uuid(record.pipeline_logging_id)
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_id),
            job=parent_run.Job(namespace=record.org_slug, name=info.pipeline_id),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=run_id),
                job=parent_run.RootJob(namespace=record.org_slug, name=info.pipeline_id),
            ),
            producer=PRODUCER,
        )


def _custom_facet(schema_url: str, fields: dict[str, Any]) -> Any:
    """A RunFacet carrying `fields` (the client serialises attrs classes, so build one)."""
    from openlineage.client.generated.base import RunFacet

    facet = RunFacet(producer=PRODUCER).with_additional_properties(**fields)
    facet._schemaURL = schema_url
    return facet


class OpenLineageExporter:
    """Exporter protocol over an OpenLineageClient (built from its own config unless given)."""

    name = "openlineage"

    def __init__(self, client: Any = None) -> None:
        if client is None:
            from openlineage.client import OpenLineageClient

            client = OpenLineageClient()
        self.client = client
        self.mapper = OpenLineageMapper()

    def export(self, records: Sequence[TransitionRecord]) -> None:
        """Emit each record's event in order; stop at the first failure (the receiver is down)."""
        for index, record in enumerate(records):
            event = self.mapper.to_event(record)
            if event is None:
                continue
            try:
                self.client.emit(event)
            except Exception as error:
                for later in records[index + 1 :]:  # keep run names consistent for what follows
                    self.mapper.runs.observe(later)
                    self.mapper.runs.forget_if_ended(later)
                raise ExportFailed(
                    f"OpenLineage emit failed: {type(error).__name__}: {error}",
                    failed=len(records) - index,
                ) from error

    def shutdown(self, timeout: float) -> None:
        """Close the client's transport."""
        self.client.close(timeout)
