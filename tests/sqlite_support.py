"""Test support for SQLite stores: a fresh file, a store on it, a table's rows read back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persistence import SQLiteStore
from persistence.stores.base import STATE_TRANSITIONS


def table_rows(path: Path, table: str = STATE_TRANSITIONS) -> list[dict[str, Any]]:
    """Every row of a table, read through a separate connection."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}"')]
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A path for a fresh database file."""
    return tmp_path / "audit.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    """A SQLiteStore on a fresh file, closed after the test."""
    s = SQLiteStore(db)
    yield s
    s.close()
