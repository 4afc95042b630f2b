"""`pipestate run`: run one pipeline with live progress, then print its timeline."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING, Any

import attrs
import click

from pipestate._cli_output import ProgressSink, print_timeline, to_json
from pipestate.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError, open_store_or_fail

if TYPE_CHECKING:
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


async def _run(opts: RunOptions, store: Any, settings: Any, live: bool) -> PipelineResult:
    from executor.runner import run_pipeline
    from persistence.logger import MetadataLogger

    # The CLI fills org_meta_pipeline_runs / org_meta_step_logs too (derived from transitions).
    async with MetadataLogger(store, settings, derive_run_rows=True) as logger:
        sink = ProgressSink(logger)
        display = _live(sink) if live else contextlib.nullcontext()
        with display:
            result = await run_pipeline(
                opts.pipeline,
                org_slug=opts.org,
                logger=sink,
                trigger_type=opts.trigger_type,
                user_id=opts.user_id,
                config_dir=opts.config_dir,
                concurrency=opts.concurrency,
                fail_fast=opts.fail_fast,
                store=store,
                params=opts.params,
            )
        await logger.flush()
    return result


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


def run_and_report(opts: RunOptions) -> int:
    """Run the pipeline, print progress and timeline (or JSON); return the exit code."""
    from classifier.errors import ValidationError
    from persistence.queries import run_query
    from persistence.settings import LoggerSettings

    try:
        settings = LoggerSettings.from_env()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    store = open_store_or_fail(opts.store_url)
    live = not opts.as_json and sys.stdout.isatty()
    try:
        try:
            result = asyncio.run(_run(opts, store, settings, live))
        except ValidationError as exc:  # bad org slug or concurrency: nothing was logged
            raise ConfigError(str(exc)) from None
        rows = run_query(store, "timeline", pipeline_logging_id=result.pipeline_logging_id)
    finally:
        store.close()
    code = _exit_code(result)
    if opts.as_json:
        click.echo(to_json({"result": result.to_dict(), "timeline": rows, "exit_code": code}))
        return code
    title = f"timeline of {result.pipeline_id} ({result.pipeline_logging_id})"
    print_timeline(rows, title=title, show_all=opts.show_all)
    summary = f"pipeline {result.pipeline_id}: {result.state}"
    if result.error_type:
        summary += f" ({result.error_type})"
    click.echo(summary)
    if code == EXIT_USAGE:
        click.echo(f"Error: {result.error_message}", err=True)
    elif code == EXIT_FAILED and result.error_message:
        click.echo(f"  {result.error_message}", err=True)
    return code
