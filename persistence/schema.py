"""Table specs loaded from the schema files and bootstrap.yml; the SQLite DDL is derived here."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import attrs

FIELD_TYPES = ("STRING", "INTEGER", "TIMESTAMP", "DATE", "JSON")
FIELD_MODES = ("REQUIRED", "NULLABLE")
DEFAULT_DATASET = "organizations"
DEFAULT_PARTITION_EXPIRATION_DAYS = 90

# BigQuery type -> SQLite column type; timestamps and dates are canonical ISO text.
SQLITE_TYPES = {
    "STRING": "TEXT",
    "TIMESTAMP": "TEXT",
    "DATE": "TEXT",
    "JSON": "TEXT",
    "INTEGER": "INTEGER",
}


@attrs.frozen
class SqliteIndex:
    """A secondary SQLite index: its columns and, for a partial index, the rows it covers."""

    name: str
    columns: tuple[str, ...]
    where: str = ""  # a constant predicate on the table's own columns, never user input


# Indexes that serve the catalog's queries (persistence/queries/sqlite.py), the dashboard's
# (persistence/queries/_dashboard_sql.py) and the watchdog's (persistence/watch/_sql.py). Every
# index costs insert speed (each one is another B-tree insert per row: benchmarks/persistence.py
# measures the writer's ceiling), so the selective ones are partial, indexing only the rows
# their query reads, and one index serves every query that reads the same rows: the catalog's
# and the dashboard's, org-scoped or not, share an index led by transition_date (a window's
# date range is the seek; org_slug and the states are then read from the index entry).
SQLITE_INDEXES: Mapping[str, tuple[SqliteIndex, ...]] = {
    "org_meta_state_transitions": (
        # stuck, long_running: entity_type = 'PIPELINE' AND from_state = 'RUNNING' AND duration > ?
        SqliteIndex(
            "long_running",
            ("duration_in_state_ms",),
            "entity_type = 'PIPELINE' AND from_state = 'RUNNING'",
        ),
        # Every transition of a window: the dashboard's from x to heatmap reads one org's window
        # from this index alone (covering), and the stuck query's hung candidates (to_state =
        # 'RUNNING', half the rows) are filtered on the entry before the table is read.
        SqliteIndex("window", ("transition_date", "to_state", "org_slug", "from_state")),
        # failures / steps / dashboard errors / watchdog: FAILED rows within the window
        SqliteIndex("failed", ("transition_date",), "to_state = 'FAILED'"),
        # retries, dashboard retry success: the steps that went RUNNING -> RETRYING in the window
        SqliteIndex("retrying_window", ("transition_date", "org_slug"), "to_state = 'RETRYING'"),
        # PIPELINE transitions within the window (two or three per run), their state on the
        # entry: runs, dashboard runs, watchdog failure_rate and permanent_failure, and the
        # runs started in the window (watchdog stuck rule, the dashboard's stuck list)
        SqliteIndex("pipeline_window", ("transition_date", "to_state"), "entity_type = 'PIPELINE'"),
        # timeline, and the hung query's "no later transition" probe
        SqliteIndex("run_time", ("pipeline_logging_id", "transition_time")),
        # "has this run ended?" as one covering lookup (stuck and orphan sweeps ask it per run)
        SqliteIndex(
            "pipeline_ended_run",
            ("pipeline_logging_id",),
            "entity_type = 'PIPELINE' AND to_state IN ('COMPLETED', 'FAILED', 'TIMEOUT')",
        ),
    ),
    # org_meta_pipeline_runs and org_meta_step_logs: no secondary index. No catalog, dashboard,
    # watchdog or service statement reads them (their rows are derived from the transitions,
    # which every query reads instead), and their inserts run in the writer's hot path: the
    # run index cost ~1.5 us per transition on 500 concurrent runs (random inserts).
    # Watchdog (persistence/watch/_sql.py): leases by run, alert incidents by time.
    # covering for the orphan sweep's per-run aggregate (no table reads for the 1000s of
    # released leases; owner columns are read only for the dead ones)
    "org_meta_run_leases": (
        SqliteIndex("run", ("pipeline_logging_id", "lease_date", "event", "expires_at")),
    ),
    "org_meta_alerts": (SqliteIndex("time", ("alert_date",)),),
}

# Indexes earlier versions created, merged into the ones above or not needed: ensure_tables drops
# them from an existing file (each would otherwise still be maintained on every insert).
RETIRED_SQLITE_INDEXES: Mapping[str, tuple[str, ...]] = {
    "org_meta_state_transitions": (
        "entered_running",
        "retrying",
        "pipeline_day",
        "pipeline_started",
        "pipeline_ended",
        "ui_window",
        "ui_retrying",
        "ui_pipeline_running",
    ),
    # Read by no query (see SQLITE_INDEXES); purge's date filter on these tables scans them.
    "org_meta_pipeline_runs": ("run", "run_date"),
    "org_meta_step_logs": ("run", "run_date"),
}


@attrs.frozen
class FieldSpec:
    """One column of a table, as the BigQuery JSON schema file declares it."""

    name: str
    type: str = attrs.field(validator=attrs.validators.in_(FIELD_TYPES))
    mode: str = attrs.field(default="NULLABLE", validator=attrs.validators.in_(FIELD_MODES))
    description: str = ""

    @property
    def required(self) -> bool:
        """True when the column is NOT NULL."""
        return self.mode == "REQUIRED"


@attrs.frozen
class TableSpec:
    """Everything bootstrap needs to create one table, on BigQuery or SQLite."""

    name: str
    fields: tuple[FieldSpec, ...]
    id_column: str
    partition_field: str
    partition_type: str = "DAY"
    clustering: tuple[str, ...] = ()
    description: str = ""
    expiration_days: int | None = attrs.field(default=DEFAULT_PARTITION_EXPIRATION_DAYS)
    schema_path: str = ""

    def __attrs_post_init__(self) -> None:
        """Cross-check that every column bootstrap.yml names exists in the schema file."""
        names = {f.name for f in self.fields}
        for column in (self.id_column, self.partition_field, *self.clustering):
            if column not in names:
                raise ValueError(
                    f"table {self.name!r}: column {column!r} named in bootstrap.yml "
                    f"is not in its schema file (columns: {sorted(names)})."
                )

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in schema order."""
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> FieldSpec:
        """Return the named column or raise KeyError naming the table."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"table {self.name!r} has no column {name!r}")


def _field_from_json(table: str, raw: Mapping[str, Any]) -> FieldSpec:
    """Build a FieldSpec from one schema-file entry, naming the table on error."""
    try:
        return FieldSpec(
            name=raw["name"],
            type=raw["type"],
            mode=raw.get("mode", "NULLABLE"),
            description=raw.get("description", ""),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"schema of {table!r}: bad field {raw!r}: {exc}") from exc


@functools.cache
def _load_bootstrap() -> dict[str, Any]:
    """Read bootstrap.yml and every schema file it names (cached; the files are package data)."""
    # Imported here, and libyaml's safe loader where built: importlib.resources and PyYAML's
    # pure-Python parser cost a `pipestate run` more CPU than the rest of opening the store.
    import pkgutil

    import yaml

    def read(name: str) -> bytes:
        data = pkgutil.get_data("persistence", f"schemas/{name}")
        if data is None:  # a loader without get_data: not one this package is installed by
            raise FileNotFoundError(f"persistence/schemas/{name}")
        return data

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    config = yaml.load(read("bootstrap.yml"), Loader=loader)  # a safe loader, C or Python
    for table in config["tables"]:
        table["_fields"] = json.loads(read(table["schema_path"]))
    return dict(config)


def dataset_name() -> str:
    """The dataset bootstrap.yml names (default 'organizations')."""
    return str(_load_bootstrap().get("dataset", DEFAULT_DATASET))


@functools.cache  # immutable specs from package data; a run asks twice (store, bootstrap)
def load_table_specs(partition_expiration_days: int | None = None) -> tuple[TableSpec, ...]:
    """Load every table spec; `partition_expiration_days` overrides bootstrap.yml's value."""
    config = _load_bootstrap()
    expiration = partition_expiration_days
    if expiration is None:
        expiration = int(config.get("partition_expiration_days", DEFAULT_PARTITION_EXPIRATION_DAYS))
    if expiration <= 0:
        raise ValueError(f"partition_expiration_days must be > 0 (got {expiration!r}).")
    specs = []
    for table in config["tables"]:
        name = table["table_name"]
        partitioning = table.get("partitioning") or {}
        # A table may opt out of expiry with `partition_expiration_days: null` (the key table).
        table_expiration = table.get("partition_expiration_days", expiration)
        specs.append(
            TableSpec(
                name=name,
                fields=tuple(_field_from_json(name, raw) for raw in table["_fields"]),
                id_column=table["id_column"],
                partition_field=partitioning["field"],
                partition_type=partitioning.get("type", "DAY"),
                clustering=tuple(table.get("clustering") or ()),
                description=table.get("description", ""),
                expiration_days=table_expiration,
                schema_path=table["schema_path"],
            )
        )
    return tuple(specs)


@functools.cache
def table_spec(name: str) -> TableSpec:
    """Return the spec of one table by name (default expiration)."""
    for spec in load_table_specs():
        if spec.name == name:
            return spec
    raise KeyError(f"unknown table {name!r}; known: {[s.name for s in load_table_specs()]}")


def sqlite_create_table(spec: TableSpec) -> str:
    """The CREATE TABLE statement for a spec: types mapped, REQUIRED -> NOT NULL, id PRIMARY KEY."""
    columns = []
    for f in spec.fields:
        column = f'"{f.name}" {SQLITE_TYPES[f.type]}'
        if f.name == spec.id_column:
            column += " PRIMARY KEY NOT NULL"
        elif f.required:
            column += " NOT NULL"
        columns.append(column)
    body = ",\n    ".join(columns)
    return f'CREATE TABLE IF NOT EXISTS "{spec.name}" (\n    {body}\n)'


def sqlite_indexes(spec: TableSpec) -> tuple[tuple[str, str], ...]:
    """(index name, CREATE INDEX statement) for each index serving the queries on this table."""
    out = []
    for index in SQLITE_INDEXES.get(spec.name, ()):
        name = f"ix_{spec.name}__{index.name}"
        cols = ", ".join(f'"{c}"' for c in index.columns)
        where = f" WHERE {index.where}" if index.where else ""
        out.append((name, f'CREATE INDEX IF NOT EXISTS "{name}" ON "{spec.name}" ({cols}){where}'))
    return tuple(out)


def sqlite_retired_indexes(spec: TableSpec) -> tuple[tuple[str, str], ...]:
    """(index name, DROP INDEX statement) for each index an earlier version made on this table."""
    out = []
    for short in RETIRED_SQLITE_INDEXES.get(spec.name, ()):
        name = f"ix_{spec.name}__{short}"
        out.append((name, f'DROP INDEX IF EXISTS "{name}"'))
    return tuple(out)
