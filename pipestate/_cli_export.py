"""`pipestate run --lineage / --otel`: build the exporters, and stop them after the run."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import click

from pipestate.cli import ConfigError

if TYPE_CHECKING:
    from persistence.fanout import FanoutSink
    from statemachine import TransitionSink


def build_cli_exporters(lineage: bool, otel: bool) -> list[Any]:
    """The export workers the flags ask for ([] imports nothing); a setup error is a usage error."""
    if not (lineage or otel):
        return []
    from persistence.exporters import build_exporters

    try:
        return build_exporters(lineage, otel)
    except (ImportError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def start_fanout(logger: TransitionSink, workers: list[Any]) -> FanoutSink | None:
    """A started FanoutSink over the logger, or None when no exporter is on."""
    if not workers:
        return None
    from persistence.fanout import FanoutSink

    fanout = FanoutSink(logger, workers)
    fanout.start()
    return fanout


async def stop_fanout(fanout: FanoutSink | None) -> dict[str, Any] | None:
    """Drain and stop the exporters (bounded by their stop timeout); report drops on stderr."""
    if fanout is None:
        return None
    await asyncio.to_thread(fanout.stop)
    stats = fanout.stats()
    for name, figures in stats.items():
        if figures["dropped_total"]:
            click.echo(f"warning: {name} exporter dropped {figures['dropped']}", err=True)
    return stats
