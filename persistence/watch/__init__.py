"""The watchdog: run leases, orphan recovery, alert rules and notifications (docs/operations.md).

Names are loaded on first use: the executor imports persistence.watch.leases on every run and
must not pay for the alert, notification and recovery modules.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AlertConfig": "rules",
    "AlertEvent": "alerts",
    "CycleReport": "watcher",
    "DEFAULT_CONFIG": "rules",
    "Firing": "alerts",
    "LeaseKeeper": "leases",
    "LeaseOwner": "leases",
    "LeaseSettings": "leases",
    "Notifier": "notify",
    "Orphan": "recovery",
    "RecoveryOutcome": "recovery",
    "RulesError": "rules",
    "Watcher": "watcher",
    "advance_incidents": "alerts",
    "evaluate": "alerts",
    "find_orphans": "recovery",
    "load_config": "rules",
    "recover_run": "recovery",
    "sweep": "recovery",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines `name` on first access."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'persistence.watch' has no attribute {name!r}")
    return getattr(importlib.import_module(f"persistence.watch.{_EXPORTS[name]}"), name)
