"""`pipestate watch`, `pipestate recover`, `pipestate alerts check`: the watchdog from the CLI.

watch: sweep orphans and evaluate alerts every interval until SIGTERM / Ctrl-C (exit 0).
recover: one sweep (cron-friendly). alerts check: one alert cycle (incident rows written,
notifications sent unless --no-notify); exit 0 when nothing fires, 1 when something does.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import click

from pipestate.cli import (
    EXIT_FAILED,
    EXIT_OK,
    ConfigError,
    _debug_option,
    _json_option,
    _store_option,
    open_store_or_fail,
    steady_gc,
)

_SIGNAL_POLL_SECONDS = 0.1  # how soon `watch` notices SIGTERM / Ctrl-C

_rules_option = click.option(
    "--rules",
    "rules_path",
    envvar="PIPESTATE_ALERT_RULES",
    show_envvar=True,
    type=click.Path(dir_okay=False),
    default=None,
    help="Alert rules YAML file (default: built-in rules, log channel).",
)


def _config(rules_path: str | None) -> Any:
    from persistence.watch.rules import RulesError, load_config

    try:
        return load_config(rules_path)
    except RulesError as exc:
        raise ConfigError(str(exc)) from None


def _notifier(config: Any, notify: bool) -> Any:
    from persistence.watch.notify import Notifier

    try:
        return Notifier(config.channels if notify else ())
    except ValueError as exc:  # a bad Apprise URL: named by scheme and position only
        raise ConfigError(str(exc)) from None


def _outcome(o: Any) -> dict[str, Any]:
    return {
        "pipeline_logging_id": o.pipeline_logging_id,
        "recovered": o.recovered,
        "entities": o.entities,
        "detail": o.detail,
    }


@click.command("watch")
@_store_option
@_rules_option
@click.option(
    "--interval", type=click.FloatRange(min=0.01), default=None, help="Seconds per cycle."
)
@click.option("--no-recover", is_flag=True, help="Only evaluate alerts; never recover runs.")
@_debug_option
def watch(
    store: str, rules_path: str | None, interval: float | None, no_recover: bool, debug: bool
) -> int:
    """Recover orphaned runs and evaluate alert rules every interval until stopped."""
    steady_gc()  # a long-running loop: the default collection thresholds
    from persistence.watch.watcher import Watcher, interval_from_env

    config = _config(rules_path)
    try:
        seconds = interval if interval is not None else interval_from_env()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    backend = open_store_or_fail(store, outbox=False)
    # The handler only flips a flag: Event.set() from a signal handler can deadlock when the
    # signal lands while the main thread holds that Event's own lock inside wait().
    stopping: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _: stopping.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    watcher = Watcher(
        backend,
        config=config,
        interval_seconds=seconds,
        notifier=_notifier(config, True),
        recover=not no_recover,
    )
    click.echo(f"watching {store} every {seconds:g} s ({len(config.rules)} rules)", err=True)
    try:
        watcher.start()
        while not stopping:
            time.sleep(_SIGNAL_POLL_SECONDS)
    finally:
        watcher.stop()
        backend.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"stopped after {watcher.cycles} cycles", err=True)
    return EXIT_OK


@click.command("recover")
@_store_option
@_json_option
@_debug_option
def recover(store: str, as_json: bool, debug: bool) -> int:
    """Recover every run whose lease expired (one sweep)."""
    from persistence.watch.recovery import sweep

    backend = open_store_or_fail(store, outbox=False)
    try:
        outcomes = sweep(backend)
    finally:
        backend.close()
    if as_json:
        click.echo(json.dumps([_outcome(o) for o in outcomes], indent=2))
    elif not outcomes:
        click.echo("no orphaned runs")
    for o in outcomes if not as_json else ():
        verb = f"recovered ({o.entities} entities)" if o.recovered else f"skipped: {o.detail}"
        click.echo(f"{o.pipeline_logging_id}: {verb}")
    return EXIT_OK


@click.group("alerts")
def alerts() -> None:
    """Evaluate the alert rules."""


@alerts.command("check")
@_store_option
@_rules_option
@click.option("--no-notify", is_flag=True, help="Record incidents but send no notification.")
@_json_option
@_debug_option
def check(store: str, rules_path: str | None, no_notify: bool, as_json: bool, debug: bool) -> int:
    """Evaluate every rule once; exit 1 when an alert fires, 0 when none does."""
    from persistence.watch.watcher import Watcher

    config = _config(rules_path)
    backend = open_store_or_fail(store, outbox=False)
    watcher = Watcher(
        backend, config=config, notifier=_notifier(config, not no_notify), recover=False
    )
    try:
        report = watcher.cycle()
    finally:
        watcher.stop()
        backend.close()
    if report.errors:
        raise click.ClickException("; ".join(report.errors))
    if as_json:
        rows = [
            {"rule": f.rule_name, "kind": f.rule_kind, "key": f.dedup_key, "summary": f.summary}
            for f in report.firing
        ]
        events = [{"event": e.event, "key": e.firing.dedup_key} for e in report.events]
        click.echo(json.dumps({"firing": rows, "events": events}, indent=2))
    else:
        for f in report.firing:
            click.echo(f"FIRING {f.severity} {f.rule_name}: {f.summary}")
        if not report.firing:
            click.echo("no alerts firing")
    return EXIT_FAILED if report.firing else EXIT_OK
