"""Persistence: the MetadataLogger, its stores (SQLite, BigQuery), bootstrap and the queries."""

from persistence.logger import MetadataLogger
from persistence.settings import LoggerSettings
from persistence.stores import open_store
from persistence.stores.sqlite import SQLiteStore

__all__ = ["LoggerSettings", "MetadataLogger", "SQLiteStore", "open_store"]
