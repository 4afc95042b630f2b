"""Persistence: the MetadataLogger, its stores (SQLite, BigQuery), bootstrap and the queries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
