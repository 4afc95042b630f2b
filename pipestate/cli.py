"""`pipestate`: run pipelines, bootstrap the store, run the analysis queries, draw the machines.

Configuration precedence: command-line flags > environment variables > defaults.
Heavy modules (state machines, stores, rich) are imported inside the commands.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from pipestate._script import STARTUP_GC_THRESHOLD as STARTUP_GC_THRESHOLD
from pipestate._script import hold_gc
from pipestate._script import steady_gc as steady_gc

DEFAULT_STORE = "sqlite:pipestate.db"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

F = TypeVar("F", bound=Callable[..., Any])
# Set by main(): --debug may come after the subcommand, past the group's own options.
_STATE = {"debug": False}


class ConfigError(click.ClickException):
    """A user mistake in configuration (bad config file, bad env var): exit code 2."""

    exit_code = EXIT_USAGE


def _store_option(fn: F) -> F:
    return click.option(
        "--store",
        envvar="PIPESTATE_STORE",
        default=DEFAULT_STORE,
        show_default=True,
        show_envvar=True,
        help="Where audit rows go: sqlite:PATH or bigquery:PROJECT.DATASET.",
    )(fn)


def _debug_option(fn: F) -> F:
    return click.option("--debug", is_flag=True, default=False, help="Show tracebacks for errors.")(
        fn
    )


def _json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(fn)


def open_store_or_fail(url: str, *, outbox: bool = True, **options: Any) -> Any:
    """Open the store named by `url`, turning a bad URL into a usage error.

    Commands that only read or create tables pass outbox=False: an outbox exists to make
    writes durable and would only add a file and an upload thread. `options` go to the store.
    """
    from persistence.stores import open_store

    try:
        return open_store(url, outbox=outbox, **options)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"--store {url!r}: {exc}") from None


class _LazyGroup(click.Group):
    """A group whose optional commands are imported only when used (keeps --help fast)."""

    lazy: dict[str, str] = {  # noqa: RUF012
        "outbox": "pipestate.cli_outbox:outbox",
        "runs": "pipestate.cli_runs:runs",
        "validate": "pipestate.cli_validate:validate",
        "purge": "pipestate.cli_purge:purge",
        "verify": "pipestate.cli_verify:verify_command",
        "report": "pipestate.cli_report:report",
        "serve": "pipestate.cli_serve:serve_command",
        "keys": "pipestate.cli_keys:keys",
    }
    lazy |= {c: f"pipestate.cli_watch:{c}" for c in ("watch", "recover", "alerts")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return eager and lazy command names."""
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return a command, importing a lazy one on first use (None if it cannot load)."""
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module_name, _, attr = self.lazy[cmd_name].partition(":")
            try:
                import importlib

                command = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError):
                return None
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


def import_modules(names: Sequence[str]) -> None:
    """Import each --import MODULE (processor plug-ins, exception classes) or fail naming it."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any import-time error is the user's module's: report it
            raise ConfigError(f"--import {name}: cannot import it ({_one_line(exc)}).") from None


def _import_option(fn: F) -> F:
    return click.option(
        "--import",
        "imports",
        multiple=True,
        metavar="MODULE",
        help="Import MODULE first (repeatable): processors it registers, exceptions it defines.",
    )(fn)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="pipestate", prog_name="pipestate", message="%(prog)s %(version)s"
)
@_debug_option
def cli(debug: bool) -> None:
    """pipestate: run data pipelines as state machines with a queryable audit trail."""
    configure_logging(debug=debug or _STATE["debug"])


def configure_logging(*, debug: bool) -> None:
    """Send library log lines to stderr, warnings only unless --debug (stdout stays clean).

    structlog is configured when the engine first logs through it, not here: importing it costs
    more than a whole quiet run (statemachine/_log.py).
    """
    import logging

    from statemachine._log import configure_when_used

    level = logging.DEBUG if debug else logging.WARNING
    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s"
    )

    def configure(structlog: Any) -> None:
        structlog.configure(
            # Resolve sys.stderr per call: in-process callers (tests, click's runner) swap it.
            logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(level),
            cache_logger_on_first_use=False,
        )

    configure_when_used(configure)


@cli.command("run")
@click.argument("pipeline")
@click.option("--org", envvar="PIPESTATE_ORG", show_envvar=True, help="Organisation slug.")
@_store_option
@click.option(
    "--config-dir",
    envvar="PIPESTATE_CONFIG_DIR",
    default="configs",
    show_default=True,
    show_envvar=True,
    type=click.Path(file_okay=False),
    help="Root of provider/domain/pipeline.yml configs.",
)
@click.option("--user-id", envvar="PIPESTATE_USER_ID", default=None, help="Who triggered the run.")
@click.option("--trigger-type", default="cli", show_default=True, help="Recorded trigger type.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Max parallel steps.")
@click.option("--fail-fast/--no-fail-fast", default=None, help="Cancel the rest on a failure.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A run parameter (repeatable), e.g. --param date=2025-12-01; see the pipeline's params:.",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Print every transition (large runs otherwise show a summary).",
)
@_import_option
@click.option(
    "--lineage/--no-lineage",
    envvar="PIPESTATE_LINEAGE",
    default=False,
    show_envvar=True,
    help="Send OpenLineage run events (client configured by openlineage.yml / OPENLINEAGE_URL).",
)
@click.option(
    "--otel/--no-otel",
    envvar="PIPESTATE_OTEL",
    default=False,
    show_envvar=True,
    help="Send OpenTelemetry traces (configured by the OTEL_* variables).",
)
@_json_option
@_debug_option
def run_command(
    pipeline: str,
    org: str | None,
    store: str,
    config_dir: str,
    user_id: str | None,
    trigger_type: str,
    concurrency: int | None,
    fail_fast: bool | None,
    params: Sequence[str],
    show_all: bool,
    imports: Sequence[str],
    lineage: bool,
    otel: bool,
    as_json: bool,
    debug: bool,
) -> int:
    """Run PIPELINE (provider/domain/pipeline or a path to a .yml file).

    Exit codes: 0 COMPLETED; 1 FAILED, TIMEOUT or a store error; 2 configuration or usage
    error; 130 interrupted (SIGINT), 143 terminated (SIGTERM), after every row is flushed.
    """
    from executor.params import parse_assignments
    from pipestate._cli_run import RunOptions, run_and_report

    if not org:
        raise click.UsageError("--org is required (or set $PIPESTATE_ORG).")
    try:
        run_params = parse_assignments(tuple(params))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    import_modules(imports)
    options = RunOptions(
        pipeline=pipeline,
        org=org,
        store_url=store,
        config_dir=config_dir,
        user_id=user_id,
        trigger_type=trigger_type,
        concurrency=concurrency,
        fail_fast=fail_fast,
        params=run_params,
        as_json=as_json,
        show_all=show_all,
        lineage=lineage,
        otel=otel,
    )
    return run_and_report(options)


@cli.command("bootstrap")
@_store_option
@click.option("--dry-run", is_flag=True, help="Only report what would be created.")
@click.option("--partition-expiration-days", type=click.IntRange(min=1), default=None)
@_json_option
@_debug_option
def bootstrap_command(
    store: str, dry_run: bool, partition_expiration_days: int | None, as_json: bool, debug: bool
) -> int:
    """Create the audit tables in the store (idempotent).

    With --dry-run on a bigquery: store nothing is contacted (no credentials needed): the DDL
    that bootstrap would apply is printed.
    """
    import json

    from persistence.bootstrap import bootstrap

    if dry_run and store.startswith("bigquery:"):
        from pipestate._cli_ddl import print_bigquery_ddl

        return print_bigquery_ddl(store, partition_expiration_days, as_json=as_json)
    from pipestate._store_check import ensure_parent, sqlite_path

    backend = open_store_or_fail(store, outbox=False)
    path = sqlite_path(backend)
    if dry_run and path is not None and not os.path.exists(path):
        # A dry run creates nothing: plan against an empty in-memory database instead.
        from persistence.stores.sqlite import SQLiteStore

        backend.close()
        backend = SQLiteStore(":memory:")
    elif not dry_run:
        ensure_parent(backend, store)
    try:
        report = bootstrap(
            backend, dry_run=dry_run, partition_expiration_days=partition_expiration_days
        )
    finally:
        backend.close()
    if as_json:
        import attrs

        click.echo(json.dumps(attrs.asdict(report), indent=2))
    else:
        click.echo(report.render())
    return EXIT_OK


def _query_help() -> str:
    """The query command's help: every query with its parameters (from the catalog)."""
    from persistence.queries.catalog import CATALOG

    lines = [
        "Run a named analysis query.",
        "",
        "\b",
        "Queries and their parameters (-p KEY=VALUE):",
    ]
    for spec in CATALOG.values():
        lines.append(f"  {spec.name}")
        for param in spec.caller_params:
            default = "required" if param.required else f"default {param.default}"
            if param.default is None and not param.required:
                default = "optional"
            lines.append(f"    {param.name} ({param.type}, {default}): {param.description}")
    return "\n".join(lines)


class _QueryCommand(click.Command):
    """The query command; its help (built from the catalog) is made only when asked for."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the help text, listing every query's parameters (imports the catalog)."""
        self.help = _query_help()
        super().format_help_text(ctx, formatter)


@cli.command(
    "query",
    cls=_QueryCommand,
    short_help="Run a named analysis query (stuck, failures, steps, retries, timeline, runs).",
)
@click.argument("name")
@_store_option
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A query parameter (repeatable), e.g. -p pipeline_logging_id=...",
)
@click.option("--wide", is_flag=True, help="Keep each row on one line (ids never fold).")
@_json_option
@_debug_option
def query_command(
    name: str, store: str, params: Sequence[str], wide: bool, as_json: bool, debug: bool
) -> int:
    """Run a named analysis query: stuck, failures, steps, retries, timeline or runs."""
    from persistence.queries import QueryError, get_query, run_query
    from pipestate._cli_output import print_rows, row_count, to_json
    from pipestate._store_check import require_existing

    values: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--param expects KEY=VALUE (got {item!r}).")
        values[key.strip()] = value
    try:
        get_query(name)  # an unknown name is a usage error, whatever the store
    except QueryError as exc:
        raise ConfigError(str(exc)) from None
    backend = open_store_or_fail(store, outbox=False)
    try:
        require_existing(backend, store)
        rows = run_query(backend, name, **values)
    except QueryError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        backend.close()
    if as_json:
        click.echo(to_json(rows))
    else:
        print_rows(rows, title=f"query {name} ({row_count(len(rows))})", wide=wide)
    return EXIT_OK


@cli.command("diagram")
@click.argument("kind", type=click.Choice(["pipeline", "step"]), required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "svg", "dot"]),
    default="mermaid",
    show_default=True,
)
@_debug_option
def diagram_command(kind: str | None, fmt: str, debug: bool) -> int:
    """Print the state diagram of the pipeline and/or step machine."""
    import shutil

    from statemachine.diagrams import render_diagram

    kinds = [kind] if kind else ["pipeline", "step"]
    if fmt == "svg" and shutil.which("dot") is None:
        raise click.ClickException(
            "--format svg needs Graphviz's 'dot' on PATH (not found); "
            "use --format mermaid or --format dot."
        )
    try:
        for k in kinds:
            click.echo(render_diagram(k, fmt))
    except (ValueError, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    return EXIT_OK


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `pipestate` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _STATE["debug"] = debug
    # Before anything can log: structlog's default prints to stdout and would corrupt --json.
    configure_logging(debug=debug)
    try:
        rv = cli.main(args=args, prog_name="pipestate", standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        if debug:
            traceback.print_exc()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from classifier.errors import ValidationError

        code = EXIT_USAGE if isinstance(exc, ValidationError) else EXIT_FAILED
        click.echo(f"Error: {_one_line(exc)}", err=True)
        if debug:
            traceback.print_exc()
        else:
            click.echo("(run with --debug for the traceback)", err=True)
        return code
    return rv if isinstance(rv, int) else EXIT_OK


def console_main() -> None:
    """The `pipestate` console script: run main() on sys.argv and exit with its code."""
    hold_gc()  # done already when entered through pipestate._script (the installed script)
    code = main()
    # Exiting, the interpreter runs a full cyclic collection over every object still alive
    # (the modules, classes and functions of the whole start-up): about 40 M instructions
    # (~10 ms) after a run, for memory the OS takes back anyway. Frozen objects are out of its
    # reach; streams, atexit handlers and the store are closed or flushed explicitly, so
    # nothing waits on that collection. (main() itself changes no GC setting: tests call it
    # in-process, many times.)
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console_main()
