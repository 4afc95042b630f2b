"""The watchdog: run leases, orphan recovery, alert rules and notifications (docs/operations.md)."""

from persistence.watch.alerts import AlertEvent, Firing, advance_incidents, evaluate
from persistence.watch.leases import LeaseKeeper, LeaseOwner, LeaseSettings
from persistence.watch.notify import Notifier
from persistence.watch.recovery import Orphan, RecoveryOutcome, find_orphans, recover_run, sweep
from persistence.watch.rules import DEFAULT_CONFIG, AlertConfig, RulesError, load_config
from persistence.watch.watcher import CycleReport, Watcher

__all__ = [
    "DEFAULT_CONFIG",
    "AlertConfig",
    "AlertEvent",
    "CycleReport",
    "Firing",
    "LeaseKeeper",
    "LeaseOwner",
    "LeaseSettings",
    "Notifier",
    "Orphan",
    "RecoveryOutcome",
    "RulesError",
    "Watcher",
    "advance_incidents",
    "evaluate",
    "find_orphans",
    "load_config",
    "recover_run",
    "sweep",
]
