"""The seed's async logging methods (log_pipeline_*, log_step_*, log_state_transition)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from persistence import _rows
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS
from statemachine.legality import check_logged_transition


class SeedLoggingAPI:
    """Builds each row from the seed's keyword arguments and hands it to _log_row()."""

    async def _log_row(self, table: str, build: Callable[..., Any], **fields: Any) -> None:
        """Build a row and queue it (implemented by MetadataLogger)."""
        raise NotImplementedError

    async def log_pipeline_start(
        self,
        *,
        pipeline_logging_id: str,
        pipeline_id: str,
        org_slug: str | None = None,
        start_time: dt.datetime | None = None,
        trigger_type: str | None = None,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record that a pipeline run started (row id "<pipeline_logging_id>:start")."""
        await self._log_row(
            PIPELINE_RUNS,
            _rows.pipeline_run_row,
            phase="start",
            status="RUNNING",
            pipeline_logging_id=pipeline_logging_id,
            pipeline_id=pipeline_id,
            org_slug=org_slug,
            start_time=start_time,
            trigger_type=trigger_type,
            user_id=user_id,
            metadata=metadata,
        )

    async def log_pipeline_end(
        self,
        *,
        pipeline_logging_id: str,
        pipeline_id: str,
        status: str,
        start_time: dt.datetime,
        org_slug: str | None = None,
        end_time: dt.datetime | None = None,
        duration_ms: int | None = None,
        error_message: str | None = None,
        error_context: dict[str, Any] | None = None,
        trigger_type: str | None = None,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record how a pipeline run ended (row id "<pipeline_logging_id>:end")."""
        await self._log_row(
            PIPELINE_RUNS,
            _rows.pipeline_run_row,
            phase="end",
            status=str(getattr(status, "value", status)),
            pipeline_logging_id=pipeline_logging_id,
            pipeline_id=pipeline_id,
            org_slug=org_slug,
            start_time=start_time,
            end_time=end_time,
            duration_ms=duration_ms,
            error_message=error_message,
            error_context=error_context,
            trigger_type=trigger_type,
            user_id=user_id,
            metadata=metadata,
        )

    async def log_step_start(
        self,
        *,
        step_logging_id: str,
        pipeline_logging_id: str,
        step_name: str,
        step_type: str | None = None,
        step_index: int | None = None,
        attempt: int = 0,
        org_slug: str | None = None,
        start_time: dt.datetime | None = None,
        trigger_type: str | None = None,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record that a step attempt started (row id "<step_logging_id>:<attempt>:start")."""
        await self._log_row(
            STEP_LOGS,
            _rows.step_log_row,
            phase="start",
            status="RUNNING",
            step_logging_id=step_logging_id,
            pipeline_logging_id=pipeline_logging_id,
            step_name=step_name,
            step_type=step_type,
            step_index=step_index,
            attempt=attempt,
            org_slug=org_slug,
            start_time=start_time,
            trigger_type=trigger_type,
            user_id=user_id,
            metadata=metadata,
        )

    async def log_step_end(
        self,
        *,
        step_logging_id: str,
        pipeline_logging_id: str,
        step_name: str,
        status: str,
        start_time: dt.datetime,
        step_type: str | None = None,
        step_index: int | None = None,
        attempt: int = 0,
        org_slug: str | None = None,
        end_time: dt.datetime | None = None,
        duration_ms: int | None = None,
        error_message: str | None = None,
        error_context: dict[str, Any] | None = None,
        trigger_type: str | None = None,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record how a step attempt ended; error_context lands in metadata["error_context"]."""
        await self._log_row(
            STEP_LOGS,
            _rows.step_log_row,
            phase="end",
            status=str(getattr(status, "value", status)),
            step_logging_id=step_logging_id,
            pipeline_logging_id=pipeline_logging_id,
            step_name=step_name,
            step_type=step_type,
            step_index=step_index,
            attempt=attempt,
            org_slug=org_slug,
            start_time=start_time,
            end_time=end_time,
            duration_ms=duration_ms,
            error_message=error_message,
            error_context=error_context,
            trigger_type=trigger_type,
            user_id=user_id,
            metadata=metadata,
        )

    async def log_state_transition(self, **kwargs: Any) -> None:
        """The seed's log_state_transition(pipeline_logging_id=..., from_state=..., ...).

        Accepts the seed's keyword arguments (stack_trace is truncated to 2000 characters)
        plus org_slug, transition_id and transition_time; builds and queues a TransitionRecord.
        A transition no machine could make (unknown entity_type or state, an edge missing from
        the table) raises IllegalTransition and writes nothing; chain continuity is not checked
        here (one row cannot show it): `pipestate verify` checks stored chains.
        """
        check_logged_transition(
            kwargs.get("entity_type"),
            kwargs.get("from_state"),
            kwargs.get("to_state"),
            entity_name=kwargs.get("entity_name"),
            entity_id=kwargs.get("step_logging_id") or kwargs.get("pipeline_logging_id"),
        )
        await self._log_row(STATE_TRANSITIONS, _rows.transition_record, **kwargs)
