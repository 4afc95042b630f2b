"""run_pipeline: load a config, run it, report how it ended (state objects write the rows)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from classifier.errors import ValidationError
from executor.config import IDENTIFIER_RE, PipelineConfig, load_pipeline_config
from executor.params import check_values
from executor.params import resolve as resolve_params

if TYPE_CHECKING:
    from statemachine import Clock, PipelineRun, TransitionSink


@attrs.frozen(kw_only=True)
class PipelineResult:
    """How a run ended: the pipeline's state and error type, and every step's final state."""

    pipeline_logging_id: str
    pipeline_id: str
    state: str
    step_states: dict[str, str] = attrs.field(factory=dict)
    retry_counts: dict[str, int] = attrs.field(factory=dict)
    error_type: str | None = None
    error_message: str | None = None
    failed_step: str | None = None

    @property
    def ok(self) -> bool:
        """True when the pipeline COMPLETED."""
        return self.state == "COMPLETED"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (for --json output)."""
        return attrs.asdict(self)


async def run_pipeline(
    config_or_path: PipelineConfig | str | os.PathLike[str],
    *,
    org_slug: str,
    logger: TransitionSink,
    trigger_type: str = "api",
    user_id: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    concurrency: int | None = None,
    fail_fast: bool | None = None,
    clock: Clock | None = None,
    store: Any = None,
    pipeline_logging_id: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> PipelineResult:
    """Run one pipeline to a terminal state, emitting every transition to `logger`.

    A missing or invalid config is not raised: it yields the seed's trail PENDING -> RUNNING ->
    FAILED (VALIDATION_ERROR) under the requested name; so do `params` that do not match the
    pipeline's `params:` schema (the error names the parameter). The resolved params reach every
    processor as `context.params` and are recorded in the PENDING -> RUNNING metadata.
    Cancellation ends every step and the pipeline FAILED, then propagates. An invalid org_slug
    raises ValidationError (nothing to log).
    """
    if not isinstance(org_slug, str) or not IDENTIFIER_RE.match(org_slug):
        raise ValidationError(
            f"org_slug: expected letters, digits, '_', '-', '.' (got {org_slug!r})"
        )
    if concurrency is not None and concurrency < 1:
        raise ValidationError(f"concurrency: expected an integer >= 1 (got {concurrency!r})")
    from statemachine import PipelineRun

    if getattr(logger, "derive_run_rows", False) is None:
        # A MetadataLogger left at its default: fill the run and step tables, as the CLI does.
        logger.derive_run_rows = True  # type: ignore[attr-defined]

    def new_run(name: str) -> PipelineRun:
        return PipelineRun.create(
            name,
            org_slug=org_slug,
            sink=logger,
            trigger_type=trigger_type,
            user_id=user_id,
            pipeline_logging_id=pipeline_logging_id,
            clock=clock,
        )

    if isinstance(config_or_path, PipelineConfig):
        requested = config_or_path.pipeline_id
    else:
        requested = os.fspath(config_or_path)
    try:
        config = _load(config_or_path, config_dir)
        resolved = resolve_params(config.params, params)
    except ValidationError as exc:
        return _invalid(new_run(requested[:200] or "<unnamed>"), exc, params)

    from executor._execution import Execution
    from executor.lease import open_lease

    run = new_run(config.pipeline_id)
    lease = open_lease(store, run)  # wraps run.sink, so before the steps copy it
    execution = Execution(
        config,
        run,
        concurrency=config.concurrency if concurrency is None else concurrency,
        fail_fast=config.fail_fast if fail_fast is None else fail_fast,
        store=store,
        params=resolved,
    )
    await (execution.execute() if lease is None else lease.run(execution.execute()))
    run.forget_steps()  # no run <-> step cycle left for the collector (issue 13)
    failed = execution.failures[0] if execution.failures and run.state != "COMPLETED" else None
    error_type, error_message = _pipeline_error(run.state, execution, failed)
    return PipelineResult(
        pipeline_logging_id=run.pipeline_logging_id,
        pipeline_id=config.pipeline_id,
        state=str(run.state),
        step_states={sid: str(s.state) for sid, s in execution.steps.items()},
        retry_counts={sid: s.retry_count for sid, s in execution.steps.items()},
        error_type=error_type,
        error_message=error_message,
        failed_step=failed[0] if failed and run.state == "FAILED" else None,
    )


def _load(
    config_or_path: PipelineConfig | str | os.PathLike[str],
    config_dir: str | os.PathLike[str] | None,
) -> PipelineConfig:
    if isinstance(config_or_path, PipelineConfig):
        from executor._validate import validate_config

        validate_config(config_or_path)
        return config_or_path
    return load_pipeline_config(config_or_path, config_dir=config_dir)


def _invalid(
    run: PipelineRun, exc: ValidationError, params: Mapping[str, Any] | None
) -> PipelineResult:
    from classifier import ErrorType

    # The requested params are recorded when they are a plain mapping (they may be the culprit).
    try:
        check_values(params or {})
        started = {"params": dict(params)} if params else None
    except ValidationError:
        started = None
    run.start(reason="Pipeline execution started", metadata=started)
    run.fail(
        exc,
        error_type=ErrorType.VALIDATION_ERROR,
        reason=f"Invalid pipeline: {str(exc)[:180]}",
    )
    return PipelineResult(
        pipeline_logging_id=run.pipeline_logging_id,
        pipeline_id=run.entity_name,
        state=str(run.state),
        error_type="VALIDATION_ERROR",
        error_message=str(exc),
    )


def _pipeline_error(
    state: str, execution: Any, failed: tuple[str, BaseException, str] | None
) -> tuple[str | None, str | None]:
    if state == "COMPLETED":
        return None, None
    if state == "TIMEOUT":
        limit = execution.config.timeout_minutes
        return "TIMEOUT", f"pipeline exceeded its timeout of {limit:g} minutes"
    if failed is not None:
        from classifier import redact
        from classifier.engine import safe_str

        detail = redact(safe_str(failed[1]))
        return str(failed[2]), f"step {failed[0]}: {type(failed[1]).__name__}: {detail}"
    return "UNKNOWN", None
