"""Table specs come from the schema files and bootstrap.yml; the SQLite DDL is derived from them."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from persistence.schema import (
    FieldSpec,
    TableSpec,
    dataset_name,
    load_table_specs,
    sqlite_create_table,
    sqlite_indexes,
    sqlite_retired_indexes,
    table_spec,
)
from persistence.stores.base import API_KEYS, ID_COLUMNS, STATE_TRANSITIONS, TABLES

SCHEMAS = Path(__file__).resolve().parent.parent / "persistence" / "schemas"


class TestTableSpecs:
    """load_table_specs reads every table of bootstrap.yml with its schema file."""

    def test_every_table_is_loaded_in_order(self) -> None:
        """Every table is loaded, named and ordered as base.TABLES spells them."""
        assert tuple(s.name for s in load_table_specs()) == TABLES

    def test_fields_match_the_json_schema_files(self) -> None:
        """Each spec's fields are exactly the schema file's entries (name, type, mode)."""
        for spec in load_table_specs():
            raw = json.loads((SCHEMAS / f"{spec.name}.json").read_text())
            assert [(f.name, f.type, f.mode) for f in spec.fields] == [
                (r["name"], r["type"], r["mode"]) for r in raw
            ]

    def test_ids_partitioning_and_clustering_come_from_bootstrap(self) -> None:
        """The id column, DAY partition field and clustering come from bootstrap.yml."""
        specs = {s.name: s for s in load_table_specs()}
        assert {n: s.id_column for n, s in specs.items()} == ID_COLUMNS
        assert specs["org_meta_state_transitions"].partition_field == "transition_date"
        assert specs["org_meta_pipeline_runs"].partition_field == "run_date"
        by_run = [s for n, s in specs.items() if n not in ("org_meta_alerts", API_KEYS)]
        assert all(s.clustering == ("org_slug", "pipeline_logging_id") for s in by_run)
        assert specs["org_meta_alerts"].clustering == ("rule_kind", "dedup_key")
        assert specs[API_KEYS].clustering == ("key_id",)
        assert all(s.partition_type == "DAY" and s.description for s in specs.values())
        assert dataset_name() == "organizations"

    def test_expiration_defaults_to_90_days_and_can_be_overridden(self) -> None:
        """Partition expiration is 90 days unless the caller passes another value."""
        expiry = {s.name: s.expiration_days for s in load_table_specs()}
        assert expiry.pop(API_KEYS) is None  # keys never expire with the audit partitions
        assert set(expiry.values()) == {90}
        assert {s.expiration_days for s in load_table_specs(30) if s.name != API_KEYS} == {30}

    def test_non_positive_expiration_is_rejected(self) -> None:
        """An expiration of 0 days or less is an error naming the setting."""
        with pytest.raises(ValueError, match="partition_expiration_days"):
            load_table_specs(0)

    def test_spec_naming_a_missing_column_is_rejected(self) -> None:
        """A bootstrap entry whose id column is not in the schema fails at construction."""
        with pytest.raises(ValueError, match="'nope'"):
            TableSpec(
                name="t", fields=(FieldSpec("a", "STRING"),), id_column="nope", partition_field="a"
            )

    def test_unknown_table_lookup_names_the_known_ones(self) -> None:
        """table_spec of an unknown name raises KeyError listing the known tables."""
        with pytest.raises(KeyError, match="org_meta_step_logs"):
            table_spec("nope")


class TestSqliteDDL:
    """The SQLite CREATE TABLE is derived from the spec, never written by hand."""

    @pytest.mark.parametrize("name", TABLES)
    def test_columns_types_and_constraints_follow_the_spec(self, name: str) -> None:
        """Each column maps its type, REQUIRED becomes NOT NULL and the id is the primary key."""
        spec = table_spec(name)
        conn = sqlite3.connect(":memory:")
        conn.execute(sqlite_create_table(spec))
        info = {row[1]: row for row in conn.execute(f'PRAGMA table_info("{name}")')}
        assert list(info) == list(spec.column_names)
        expected_type = {
            "STRING": "TEXT",
            "TIMESTAMP": "TEXT",
            "DATE": "TEXT",
            "JSON": "TEXT",
            "INTEGER": "INTEGER",
        }
        for field in spec.fields:
            _, _, sql_type, notnull, _, pk = info[field.name]
            assert sql_type == expected_type[field.type]
            assert bool(notnull) == (field.required or field.name == spec.id_column)
            assert bool(pk) == (field.name == spec.id_column)

    @pytest.mark.parametrize("name", TABLES)
    def test_indexes_are_created_and_idempotent(self, name: str) -> None:
        """Every derived index can be created twice (IF NOT EXISTS) on the derived table."""
        spec = table_spec(name)
        conn = sqlite3.connect(":memory:")
        for _ in range(2):
            conn.execute(sqlite_create_table(spec))
            for _, statement in sqlite_indexes(spec):
                conn.execute(statement)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {n for n, _ in sqlite_indexes(spec)} <= names


def _statements() -> dict[str, str]:
    """Every SQL statement the SQLite store runs for the catalog, the dashboard and the watchdog."""
    from persistence.queries.dashboard_sqlite import DASHBOARD_SQLITE_SQL
    from persistence.queries.sqlite import SQLITE_SQL
    from persistence.watch._sql import SQL as WATCH_SQL

    names = {name: name for name in TABLES}
    out = {f"catalog.{k}": v for k, v in SQLITE_SQL.items()}
    out |= {
        f"dashboard.{k}": v.replace("__TABLE__", STATE_TRANSITIONS)
        for k, v in DASHBOARD_SQLITE_SQL.items()
    }
    out |= {f"watch.{k}": v.format(**names) for k, v in WATCH_SQL["sqlite"].items()}
    return out


def _plans() -> dict[str, list[str]]:
    """EXPLAIN QUERY PLAN of each statement on the full schema (parameters unbound: NULL)."""
    conn = sqlite3.connect(":memory:")
    for spec in load_table_specs():
        conn.execute(sqlite_create_table(spec))
        for _, statement in sqlite_indexes(spec):
            conn.execute(statement)
    plans = {}
    for name, sql in _statements().items():
        params = dict.fromkeys(re.findall(r":([A-Za-z_]\w*)", sql))
        plans[name] = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    conn.close()
    return plans


class TestSqliteIndexChoices:
    """The transitions table's indexes: each one serves a query, and no query scans the table."""

    def test_every_transitions_index_is_used_by_some_query(self) -> None:
        """An index no statement's plan uses only slows every insert: there is none."""
        used = {
            match
            for plan in _plans().values()
            for line in plan
            for match in re.findall(r"INDEX (ix_\w+)", line)
        }
        declared = {name for name, _ in sqlite_indexes(table_spec(STATE_TRANSITIONS))}
        assert declared - used == set()

    def test_no_statement_scans_the_transitions_table(self) -> None:
        """Every read of the transitions table is an index search (a scan would read it all)."""
        statements = _statements()
        full_scans = []
        for name, plan in _plans().items():
            sql = statements[name]
            aliases = set(re.findall(rf"(?:FROM|JOIN)\s+{STATE_TRANSITIONS}\s+AS\s+(\w+)", sql))
            aliases.add(STATE_TRANSITIONS)
            ctes = set(re.findall(r"(\w+)\s+AS\s+\(", sql))  # a CTE's own scan is fine
            full_scans += [
                (name, line)
                for line in plan
                if line.startswith("SCAN ") and line.split()[1] in aliases - ctes
            ]
        assert full_scans == []

    def test_retired_indexes_are_not_declared(self) -> None:
        """A retired index name never comes back: ensure_tables would drop what it creates."""
        for spec in load_table_specs():
            live = {name for name, _ in sqlite_indexes(spec)}
            assert live.isdisjoint(name for name, _ in sqlite_retired_indexes(spec))
