"""`pipestate serve`: the HTTP API (needs the `pipestate[service]` extra)."""

from __future__ import annotations

import click

from pipestate.cli import EXIT_OK, ConfigError, steady_gc


@click.command("serve")
@click.option("--host", envvar="PIPESTATE_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="PIPESTATE_PORT", type=click.IntRange(0, 65535), default=8001)
@click.option(
    "--store",
    envvar="PIPESTATE_STORE",
    default="sqlite:pipestate.db",
    show_default=True,
    help="sqlite:PATH or bigquery:PROJECT.DATASET.",
)
@click.option(
    "--config-dir",
    envvar="PIPESTATE_CONFIG_DIR",
    default="configs",
    show_default=True,
    type=click.Path(file_okay=False),
)
@click.option(
    "--outbox",
    envvar="PIPESTATE_OUTBOX",
    default=None,
    help="Outbox file of a bigquery store, one per process (default pipestate-outbox-PORT.db).",
)
@click.option("--max-running", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--max-running-per-org",
    type=click.IntRange(min=1),
    default=None,
    help="Fair share of one org (default: half of --max-running).",
)
@click.option(
    "--grace-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="On SIGTERM/SIGINT, time running pipelines get before they are cancelled.",
)
@click.option(
    "--key-cache-seconds",
    type=click.FloatRange(min=0.01, max=5.0),
    default=2.0,
    show_default=True,
    help="How long a replica trusts what it read about a key (revocation delay).",
)
@click.option(
    "--runner",
    type=click.Choice(["thread", "loop"]),
    envvar="PIPESTATE_SERVE_RUNNER",
    default="thread",
    show_default=True,
    help="Run the pipelines on a loop in a thread of their own, or on the serving loop.",
)
@click.option(
    "--runner-nice",
    type=click.IntRange(0, 19),
    default=None,
    help="Niceness added to the runner thread, so requests get a core first "
    "[env PIPESTATE_RUNNER_NICE; default 5; 0: off].",
)
@click.option(
    "--runner-yield-us",
    type=click.IntRange(0, 1000),
    default=None,
    help="GIL pause a busy runner thread offers the API each millisecond "
    "[env PIPESTATE_RUNNER_YIELD_US; default 50; 0: off].",
)
@click.option("--log-level", default="warning", show_default=True)
@click.option(
    "--ui/--no-ui", default=True, show_default=True, help="Serve the dashboard under /ui."
)
@click.option(
    "--watch/--no-watch",
    envvar="PIPESTATE_SERVE_WATCH",
    default=True,
    show_default=True,
    help="Run the watcher (orphan recovery and alerts) inside the service.",
)
@click.option(
    "--lineage", is_flag=True, envvar="PIPESTATE_LINEAGE", help="Emit OpenLineage events."
)
@click.option("--otel", is_flag=True, envvar="PIPESTATE_OTEL", help="Emit OpenTelemetry spans.")
def serve_command(
    host: str,
    port: int,
    store: str,
    config_dir: str,
    outbox: str | None,
    max_running: int,
    max_running_per_org: int | None,
    grace_seconds: float,
    key_cache_seconds: float,
    runner: str,
    runner_nice: int | None,
    runner_yield_us: int | None,
    log_level: str,
    ui: bool,
    watch: bool,
    lineage: bool,
    otel: bool,
) -> int:
    """Serve the HTTP API (root key from $CA_ROOT_API_KEY)."""
    steady_gc()  # a server's collections must stay short: the default thresholds
    try:
        from pipestate.service import ServiceSettings
        from pipestate.service.server import serve
    except ImportError as exc:
        raise ConfigError(
            f"pipestate serve needs the service extra: pip install 'pipestate[service]' ({exc})"
        ) from None
    if outbox is None and store.startswith("bigquery:"):
        # One outbox per process: replicas started in one directory must not share a file.
        outbox = f"pipestate-outbox-{port}.db"
    try:
        settings = ServiceSettings.from_env(
            store_url=store,
            config_dir=config_dir,
            outbox_path=outbox,
            max_running=max_running,
            max_running_per_org=max_running_per_org,
            grace_seconds=grace_seconds,
            key_cache_seconds=key_cache_seconds,
            runner=runner,
            runner_nice=runner_nice,
            runner_yield_us=runner_yield_us,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not settings.root_key:
        click.echo(
            "warning: CA_ROOT_API_KEY is not set; root routes will refuse every call", err=True
        )
    from pipestate.service.plugins import service_plugins

    plugins = service_plugins(ui=ui, watch=watch, lineage=lineage, otel=otel)
    code = serve(settings, host=host, port=port, log_level=log_level, plugins=plugins)
    return EXIT_OK if code == 0 else code
