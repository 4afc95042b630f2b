"""`pipestate run`: run one pipeline with live progress, then print its timeline."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from typing import TYPE_CHECKING, Any

import attrs
import click

from pipestate._cli_output import ProgressSink, print_timeline, to_json
from pipestate.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError, open_store_or_fail

if TYPE_CHECKING:
    from executor.config import PipelineConfig
    from executor.runner import PipelineResult


@attrs.frozen(kw_only=True)
class RunOptions:
    """Everything `pipestate run` was asked to do, after flags and environment are merged."""

    pipeline: str
    org: str
    store_url: str
    config_dir: str | None
    user_id: str | None = None
    trigger_type: str = "cli"
    concurrency: int | None = None
    fail_fast: bool | None = None
    params: dict[str, str] = attrs.field(factory=dict)
    as_json: bool = False
    show_all: bool = False
    lineage: bool = False
    otel: bool = False


@attrs.frozen(kw_only=True)
class RunOutcome:
    """How the run ended as the CLI saw it: the result, or the signal that cancelled it."""

    pipeline_logging_id: str
    result: PipelineResult | None
    signal: str | None
    rows_lost: int
    store_error: str | None


def _rows_lost(logger: Any) -> tuple[int, str | None]:
    """Rows the logger could not write, and the last store error it saw."""
    depths = logger.get_queue_depths()
    lost, error = 0, None
    for short in ("state_transition", "pipeline", "step"):
        snapshot = depths.get(short, {})
        lost += int(snapshot.get("rows_dropped", 0))
        error = snapshot.get("last_flush_error") or error
    return lost, error


def _preload(opts: RunOptions) -> PipelineConfig | None:
    """The pipeline's config before the store opens (its size picks the store's writer).

    None when the config or the params are invalid: run_pipeline then records that failure
    under the requested name, as it always has.
    """
    from classifier.errors import ValidationError
    from executor.config import load_pipeline_config
    from executor.params import resolve

    try:
        config = load_pipeline_config(opts.pipeline, config_dir=opts.config_dir)
        resolve(config.params, opts.params)
    except ValidationError:
        return None
    return config


def _store_options(url: str, config: PipelineConfig | None) -> dict[str, Any]:
    """The writer of a SQLite store: a thread for a small run (writer_process_for_steps)."""
    if not url.startswith("sqlite:"):
        return {}
    from persistence._writer_process import writer_process_for_steps

    # An invalid config runs no step: its trail is three rows.
    return {"writer_process": writer_process_for_steps(len(config.steps) if config else 0)}


async def _run(
    opts: RunOptions,
    config: PipelineConfig | None,
    store: Any,
    settings: Any,
    live: bool,
    exporters: list[Any],
) -> RunOutcome:
    from executor.runner import run_pipeline
    from persistence.logger import MetadataLogger
    from pipestate._cli_export import start_fanout, stop_fanout
    from pipestate._signals import cancel_on_signals
    from statemachine.ids import uuid7_str

    # Our own id: a run cancelled by a signal raises instead of returning its result.
    pipeline_logging_id = uuid7_str()  # time-ordered, like every engine id (statemachine.ids)
    result: PipelineResult | None = None
    # The CLI fills org_meta_pipeline_runs / org_meta_step_logs too (derived from transitions).
    async with MetadataLogger(store, settings, derive_run_rows=True) as logger:
        fanout = start_fanout(logger, exporters)  # --lineage / --otel: the logger plus exporters
        sink = ProgressSink(fanout or logger)
        display = _live(sink) if live else contextlib.nullcontext()
        task = asyncio.create_task(
            run_pipeline(
                opts.pipeline if config is None else config,
                org_slug=opts.org,
                logger=sink,
                trigger_type=opts.trigger_type,
                user_id=opts.user_id,
                config_dir=opts.config_dir,
                concurrency=opts.concurrency,
                fail_fast=opts.fail_fast,
                store=store,
                pipeline_logging_id=pipeline_logging_id,
                params=opts.params,
            )
        )
        with cancel_on_signals(task) as received, display:
            try:
                result = await task
            except asyncio.CancelledError:
                if not received:  # cancelled from outside the CLI: not ours to swallow
                    raise
        await logger.flush()
        await stop_fanout(fanout)
        lost, error = _rows_lost(logger)
    return RunOutcome(
        pipeline_logging_id=pipeline_logging_id,
        result=result,
        signal=received[0] if received else None,
        rows_lost=lost,
        store_error=error,
    )


def _live(sink: ProgressSink) -> Any:
    from rich.console import Console
    from rich.live import Live

    return Live(sink, console=Console(), refresh_per_second=8, transient=False)


def _exit_code(result: PipelineResult) -> int:
    if result.state == "COMPLETED":
        return EXIT_OK
    if result.error_type == "VALIDATION_ERROR" and not result.step_states:
        return EXIT_USAGE
    return EXIT_FAILED


def _timeline(store: Any, pipeline_logging_id: str) -> tuple[list[dict[str, Any]], str | None]:
    """The run's stored timeline, or the store error that kept it from being read."""
    from persistence.queries import run_query
    from persistence.stores.base import StoreError

    try:
        return run_query(store, "timeline", pipeline_logging_id=pipeline_logging_id), None
    except StoreError as exc:
        return [], str(exc)


def run_and_report(opts: RunOptions) -> int:
    """Run the pipeline, print progress and timeline (or JSON); return the exit code."""
    from classifier.errors import ValidationError
    from persistence.settings import LoggerSettings
    from pipestate._cli_export import build_cli_exporters
    from pipestate._signals import EXIT_CODES
    from pipestate._store_check import EXIT_STORE, prepare_store

    try:
        settings = LoggerSettings.from_env()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    exporters = build_cli_exporters(opts.lineage, opts.otel)
    config = _preload(opts)
    store = open_store_or_fail(opts.store_url, **_store_options(opts.store_url, config))
    live = not opts.as_json and sys.stdout.isatty()
    try:
        prepare_store(store, opts.store_url)  # before the first step: a bad store runs nothing
        # What start-up left alive (modules, the config, a bigquery: store's google client)
        # lives as long as the process. A full collection during the run used to walk all of
        # it: ~40 ms with the loop stopped and the last rows still queued, lost on SIGKILL
        # (docs/reliability.md). Frozen, the collector walks only what the run makes; and the
        # writer process is forked after this, so neither side's collector dirties those pages.
        gc.freeze()
        try:
            outcome = asyncio.run(_run(opts, config, store, settings, live, exporters))
        except ValidationError as exc:  # bad org slug or concurrency: nothing was logged
            raise ConfigError(str(exc)) from None
        finally:
            gc.unfreeze()  # in-process callers (tests) get a collector that reaches it all again
        rows, read_error = _timeline(store, outcome.pipeline_logging_id)
    finally:
        store.close()
    result = outcome.result
    # Only a signal ends the run without a result; one that came after the end changes nothing.
    code = EXIT_CODES[outcome.signal or "sigint"] if result is None else _exit_code(result)
    store_error = outcome.store_error or read_error
    if code == EXIT_OK and (outcome.rows_lost or read_error):
        code = EXIT_STORE  # the run succeeded but its audit trail is incomplete
    if opts.as_json:
        click.echo(
            to_json(
                {
                    "result": None if result is None else result.to_dict(),
                    "pipeline_logging_id": outcome.pipeline_logging_id,
                    "cancelled_by_signal": outcome.signal,
                    "rows_lost": outcome.rows_lost,
                    "store_error": store_error,
                    "timeline": rows,
                    "exit_code": code,
                }
            )
        )
        return code
    _report(opts, outcome, rows, store_error, code)
    return code


def _report(
    opts: RunOptions,
    outcome: RunOutcome,
    rows: list[dict[str, Any]],
    store_error: str | None,
    code: int,
) -> None:
    """Print the timeline, the outcome and any store trouble (the outcome always shows)."""
    result = outcome.result
    name = result.pipeline_id if result is not None else opts.pipeline
    title = f"timeline of {name} ({outcome.pipeline_logging_id})"
    if rows:
        print_timeline(rows, title=title, show_all=opts.show_all)
    if result is None:
        click.echo(f"pipeline {name}: FAILED (cancelled by {str(outcome.signal).upper()})")
    else:
        summary = f"pipeline {result.pipeline_id}: {result.state}"
        if result.error_type:
            summary += f" ({result.error_type})"
        click.echo(summary)
        if code == EXIT_USAGE:
            click.echo(f"Error: {result.error_message}", err=True)
        elif code == EXIT_FAILED and result.error_message:
            click.echo(f"  {result.error_message}", err=True)
    if outcome.rows_lost or store_error:
        click.echo(
            f"Warning: the store did not take every audit row ({outcome.rows_lost} lost"
            f"{'; ' + store_error if store_error else ''}).",
            err=True,
        )
