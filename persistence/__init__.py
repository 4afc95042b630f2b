"""Persistence: the MetadataLogger, its stores (SQLite, BigQuery), bootstrap and the queries."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from persistence.logger import MetadataLogger
    from persistence.settings import LoggerSettings
    from persistence.stores import open_store
    from persistence.stores.sqlite import SQLiteStore

# Public names are imported on first use: `import persistence.settings` must not load the
# logger, the stores and the schema files.
_WHERE: dict[str, str] = {
    "LoggerSettings": "persistence.settings",
    "MetadataLogger": "persistence.logger",
    "SQLiteStore": "persistence.stores.sqlite",
    "open_store": "persistence.stores",
}

__all__ = ["LoggerSettings", "MetadataLogger", "SQLiteStore", "open_store"]


def __getattr__(name: str) -> Any:
    """Import a public name from the submodule that defines it, on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'persistence' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
