"""bootstrap(): creates every table from the schema files, idempotently, with a dry run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from persistence import SQLiteStore
from persistence.bootstrap import BootstrapReport, bootstrap
from persistence.stores.base import TABLES


def _tables(path: Path) -> set[str]:
    """Names of the tables in a SQLite file."""
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


class TestBootstrap:
    """bootstrap on SQLiteStore, and its report."""

    def test_dry_run_reports_and_creates_nothing(self, tmp_path: Path) -> None:
        """A dry run lists every table as created-to-be, yet the file holds no table."""
        path = tmp_path / "b.db"
        store = SQLiteStore(path)
        report = bootstrap(store, dry_run=True)
        store.close()
        assert report.dry_run
        assert report.changed
        assert report.created == TABLES
        assert report.existing == ()
        assert "Would run" in report.render()
        assert _tables(path) == set()

    def test_first_run_creates_second_run_changes_nothing(self, tmp_path: Path) -> None:
        """The first run creates all tables; a second run reports nothing to do."""
        path = tmp_path / "b.db"
        store = SQLiteStore(path)
        first = bootstrap(store)
        second = bootstrap(store)
        store.close()
        assert first.created == TABLES
        assert first.changed
        assert set(TABLES) <= _tables(path)
        assert second == BootstrapReport(created=(), existing=TABLES, dry_run=False, actions=())
        assert second.render() == f"Nothing to do: all {len(TABLES)} tables already exist."

    def test_expiration_override_reaches_the_store(self, tmp_path: Path) -> None:
        """partition_expiration_days is passed to the store in the table specs."""
        store = SQLiteStore(tmp_path / "b.db")
        report = bootstrap(store, dry_run=True, partition_expiration_days=30)
        store.close()
        assert all(
            "retention 30 days" in a
            for a in report.actions
            if a.startswith("create table") and "org_api_keys" not in a
        )

    def test_qualified_table_names_count_as_created(self) -> None:
        """A store naming tables project.dataset.table in its actions is understood."""

        class FakeBigQuery:
            def write_batch(self, table: str, rows: object) -> object: ...
            def query(self, name: str, params: object) -> list[dict[str, object]]:
                return []

            def close(self) -> None: ...

            def ensure_tables(self, specs: object, *, dry_run: bool) -> list[str]:
                return [
                    "create dataset p.organizations",
                    "create table `p.organizations.org_meta_step_logs` (DAY on run_date)",
                ]

        report = bootstrap(FakeBigQuery(), dry_run=True)  # type: ignore[arg-type]
        assert report.created == ("org_meta_step_logs",)
        assert report.existing == tuple(t for t in TABLES if t != "org_meta_step_logs")

    def test_store_without_ensure_tables_is_a_type_error(self) -> None:
        """A store that cannot bootstrap is refused with a message naming the method."""

        class Plain:
            def write_batch(self, table: str, rows: object) -> object: ...
            def query(self, name: str, params: object) -> list[dict[str, object]]:
                return []

            def close(self) -> None: ...

        with pytest.raises(TypeError, match="ensure_tables"):
            bootstrap(Plain())  # type: ignore[arg-type]
