"""Hostile identifiers are refused with a clear error, or stored verbatim via bound parameters."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from classifier.errors import ValidationError
from executor.config import load_pipeline_config, parse_pipeline_config, resolve_pipeline
from executor.runner import run_pipeline
from persistence import MetadataLogger, SQLiteStore, open_store
from persistence.queries import run_query
from persistence.queries._run import QueryError
from persistence.queries.bigquery import render
from persistence.stores._bigquery_rows import validate_name, validate_project
from persistence.stores.base import STATE_TRANSITIONS, StoreError
from statemachine import InMemorySink, PipelineRun, StepRun
from tests.strategies.hostile import (
    HOSTILE_IDENTIFIERS,
    hostile_identifiers,
    transition_rows,
    user_tables,
    with_logger,
)

TABLES = [
    "org_api_keys",
    "org_meta_pipeline_runs",
    "org_meta_state_transitions",
    "org_meta_step_logs",
]
# Identifiers the executor must refuse: anything beyond letters, digits, '_', '-', '.'.
REFUSED = [*HOSTILE_IDENTIFIERS, "ok\n", "ok\r\n", "-x", ".x", ""]
# BigQuery accepts long names (up to 1024 characters); everything else here is refused.
BQ_REFUSED = [i for i in HOSTILE_IDENTIFIERS if i != "a" * 300]


def _emit_run(sink: Any, ident: str) -> tuple[PipelineRun, StepRun]:
    """A pipeline and a step whose every identifier and text field is `ident`."""
    pipeline = PipelineRun.create(
        ident,
        org_slug=ident,
        sink=sink,
        trigger_type=ident,
        user_id=ident,
        pipeline_logging_id=ident,
    )
    pipeline.start(reason=ident)
    step = StepRun.create(ident, pipeline=pipeline, step_logging_id=ident + "#step")
    step.start(reason=ident)
    step.complete(reason=ident)
    pipeline.complete(reason=ident)
    return pipeline, step


class TestSQLiteRoundTrip:
    """Identifiers with quotes, semicolons, backticks, newlines and NUL are data, never SQL."""

    def test_every_hostile_identifier_round_trips(self, tmp_path: Path) -> None:
        """Each identifier is stored verbatim, found by the timeline query, and no table is
        dropped or altered."""
        db = tmp_path / "ids.db"

        async def body(logger: MetadataLogger) -> None:
            _emit_run(logger, "control")
            for ident in HOSTILE_IDENTIFIERS:
                _emit_run(logger, ident)

        _, depths = with_logger(db, body)
        assert depths["state_transition"]["rows_dropped"] == 0
        assert user_tables(db) == TABLES
        rows = transition_rows(db)
        assert len(rows) == 4 * (len(HOSTILE_IDENTIFIERS) + 1)
        store = SQLiteStore(db)
        try:
            for ident in HOSTILE_IDENTIFIERS:
                mine = [r for r in rows if r["pipeline_logging_id"] == ident]
                assert len(mine) == 4
                for row in mine:
                    assert row["org_slug"] == ident
                    assert row["entity_name"] == ident
                    assert row["reason"] == ident
                    assert row["user_id"] == ident
                    assert row["trigger_type"] == ident
                timeline = run_query(store, "timeline", pipeline_logging_id=ident)
                assert [r["reason"] for r in timeline] == [ident] * 4
        finally:
            store.close()

    def test_injection_shaped_id_matches_nothing_else(self, tmp_path: Path) -> None:
        """A pipeline id shaped like "' OR '1'='1" selects only rows with exactly that id."""
        db = tmp_path / "or.db"

        async def body(logger: MetadataLogger) -> None:
            _emit_run(logger, "a")
            _emit_run(logger, "b")

        with_logger(db, body)
        store = SQLiteStore(db)
        try:
            for probe in ("' OR '1'='1", "a' OR 1=1 --", "%", "a%", "*"):
                assert run_query(store, "timeline", pipeline_logging_id=probe) == []
            assert len(run_query(store, "timeline", pipeline_logging_id="a")) == 4
        finally:
            store.close()

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ident=hostile_identifiers())
    def test_random_identifiers_round_trip(
        self, tmp_path_factory: pytest.TempPathFactory, ident: str
    ) -> None:
        """Any (encodable) identifier written by write_batch reads back verbatim."""
        sink = InMemorySink()
        _emit_run(sink, ident)
        db = tmp_path_factory.mktemp("ids") / "r.db"
        store = SQLiteStore(db)
        try:
            result = store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in sink.records])
            assert result.rejected == ()
            timeline = run_query(store, "timeline", pipeline_logging_id=ident)
        finally:
            store.close()
        assert [r["entity_name"] for r in timeline] == [ident] * 4
        assert user_tables(db) == TABLES

    def test_unknown_table_and_column_names_are_refused(self, tmp_path: Path) -> None:
        """A table name or a row column carrying SQL is refused, never formatted into SQL."""
        db = tmp_path / "t.db"
        store = SQLiteStore(db)
        sink = InMemorySink()
        _emit_run(sink, "x")
        try:
            with pytest.raises(StoreError, match="unknown table"):
                store.write_batch(f"{STATE_TRANSITIONS}; DROP TABLE x", [])
            row = dict(sink.records[0].to_row())
            row['reason" ) ; DROP TABLE org_meta_step_logs; --'] = "x"
            result = store.write_batch(STATE_TRANSITIONS, [row, sink.records[1].to_row()])
        finally:
            store.close()
        assert result.written == 1
        assert len(result.rejected) == 1
        assert "unknown column" in result.rejected[0].message
        assert user_tables(db) == TABLES

    def test_query_names_and_parameter_names_are_refused(self, tmp_path: Path) -> None:
        """Query and parameter names come from the catalog; anything else is a QueryError."""
        store = SQLiteStore(tmp_path / "q.db")
        try:
            with pytest.raises(QueryError, match="unknown query"):
                run_query(store, "timeline; DROP TABLE org_meta_state_transitions")
            with pytest.raises(QueryError, match="does not take parameter"):
                run_query(store, "timeline", pipeline_logging_id="x", **{"x' --": 1})
            with pytest.raises(QueryError, match="'days'"):
                run_query(store, "failures", days="7; DROP TABLE x")
        finally:
            store.close()


class TestExecutorRefusesIdentifiers:
    """The executor only accepts boring identifiers for org, pipeline and step ids."""

    @pytest.mark.parametrize("ident", REFUSED, ids=repr)
    def test_org_slug(self, ident: str) -> None:
        """run_pipeline refuses a hostile org_slug with a ValidationError naming the field."""
        with pytest.raises(ValidationError, match="org_slug"):
            asyncio.run(
                run_pipeline(
                    "does/not/matter", org_slug=ident, logger=InMemorySink(), config_dir="."
                )
            )

    @pytest.mark.parametrize("ident", REFUSED, ids=repr)
    @pytest.mark.parametrize("field", ["pipeline_id", "steps[0].step_id"])
    def test_config_ids(self, ident: str, field: str) -> None:
        """A hostile pipeline_id or step_id is a ValidationError naming that field."""
        quoted = '"' + ident.encode("unicode_escape").decode().replace('"', '\\"') + '"'
        pipeline_id, step_id = (quoted, "s1") if field == "pipeline_id" else ("p1", quoted)
        step = f"{{step_id: {step_id}, processor: generic.noop}}"
        doc = f"pipeline_id: {pipeline_id}\nsteps:\n  - {step}\n"
        with pytest.raises(ValidationError) as info:
            parse_pipeline_config(doc, source="cfg.yml")
        assert f"{field}: " in str(info.value)
        assert "\n" not in str(info.value)


class TestConfigPaths:
    """Pipeline names resolve inside the configs directory only."""

    def test_symlink_escaping_the_config_dir_is_refused(self, tmp_path: Path) -> None:
        """A pipeline name whose file is a symlink to outside the configs dir is refused."""
        outside = tmp_path / "outside.yml"
        outside.write_text("pipeline_id: secret\nsteps: [{step_id: a, processor: generic.noop}]\n")
        configs = tmp_path / "configs"
        (configs / "prov" / "dom").mkdir(parents=True)
        (configs / "prov" / "dom" / "evil.yml").symlink_to(outside)
        with pytest.raises(ValidationError, match="outside"):
            resolve_pipeline("prov/dom/evil", configs)

    @pytest.mark.parametrize(
        "name", ["prov/../etc", "../../etc/passwd", "prov/dom/..", "a/b/c/../../../../x"]
    )
    def test_traversal_in_names_never_reads_outside(self, tmp_path: Path, name: str) -> None:
        """Names with '..' are never resolved against the configs dir (not found or refused)."""
        configs = tmp_path / "configs"
        configs.mkdir()
        with pytest.raises(ValidationError):
            load_pipeline_config(name, config_dir=configs)

    def test_name_with_sql_and_quotes_is_just_not_found(self, tmp_path: Path) -> None:
        """A config reference full of SQL and quotes is reported as not found, verbatim."""
        ref = 'x\'; DROP TABLE t; --/"y"/`z`'
        with pytest.raises(ValidationError, match="not found"):
            load_pipeline_config(ref, config_dir=tmp_path)


class TestStoreUrls:
    """Store URLs name files literally; BigQuery identifiers are validated before any use."""

    @pytest.mark.parametrize(
        "filename", ["a;b.db", "it's.db", 'q"uote.db', "back`tick.db", "new\nline.db", "sp ace.db"]
    )
    def test_sqlite_path_is_literal(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filename: str
    ) -> None:
        """sqlite:PATH opens exactly that file name (no SQL, no URI parameters)."""
        monkeypatch.chdir(tmp_path)
        store = open_store(f"sqlite:{filename}")
        sink = InMemorySink()
        _emit_run(sink, "x")
        try:
            assert store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in sink.records]).written
        finally:
            store.close()
        assert sorted(os.listdir(tmp_path))[0] == filename
        assert user_tables(tmp_path / filename) == TABLES

    def test_sqlite_uri_parameters_are_not_interpreted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """'sqlite:file:x?mode=memory' is a file literally named 'file:x?mode=memory' (SQLite
        built with SQLITE_USE_URI=1 reads a 'file:' name as a URI: an in-memory audit log)."""
        monkeypatch.chdir(tmp_path)
        store = open_store("sqlite:file:x?mode=memory")
        try:
            store.write_batch(STATE_TRANSITIONS, [])
            run_query(store, "timeline", pipeline_logging_id="x")
        finally:
            store.close()
        assert (tmp_path / "file:x?mode=memory").is_file()

    def test_sqlite_path_with_nul_is_refused_up_front(self, tmp_path: Path) -> None:
        """A NUL byte in the SQLite path is refused when the store is made, naming the path
        (today the store is accepted and only its first query fails, with a bare
        'embedded null byte' ValueError)."""
        with pytest.raises(ValueError, match="path"):
            SQLiteStore(str(tmp_path / "a\x00b.db"))

    def test_unknown_scheme_is_refused(self) -> None:
        """Only sqlite: and bigquery: URLs open; file:// and others are ValueErrors."""
        for url in ("file:///etc/passwd", "postgres://u:p@h/db", "../../etc/passwd", "x"):
            with pytest.raises(ValueError, match="store"):
                open_store(url)

    @pytest.mark.parametrize("ident", BQ_REFUSED, ids=repr)
    def test_bigquery_names(self, ident: str) -> None:
        """Dataset/table names and project ids with SQL characters are ValueErrors that name
        the kind and quote the value."""
        with pytest.raises(ValueError, match="BigQuery dataset must match") as info:
            validate_name("dataset", ident)
        assert repr(ident) in str(info.value)
        with pytest.raises(ValueError, match="BigQuery project must match"):
            validate_project(ident)

    @pytest.mark.parametrize(
        "url",
        [
            "bigquery:proj.ds`; DROP TABLE x",
            "bigquery:proj.ds;x",
            "bigquery:proj'.ds",
            "bigquery:proj.ds\nx",
            "bigquery:../../etc.passwd",
            "bigquery:proj.ds-with-dash",
        ],
    )
    def test_bigquery_urls_refused_before_any_client(self, url: str) -> None:
        """open_store refuses hostile project or dataset names before building a client."""
        with pytest.raises(ValueError, match=r"BigQuery (project|dataset) must match|a project"):
            open_store(url, client=object())

    def test_bigquery_sql_refuses_backticks(self) -> None:
        """The BigQuery SQL renderer refuses a table reference containing a backtick."""
        with pytest.raises(ValueError, match="backticks"):
            render("timeline", "p.d.t` UNION SELECT 1 --")


def test_sqlite_file_is_untouched_by_hostile_ids(tmp_path: Path) -> None:
    """Raw check: after the hostile round trip, sqlite_master holds only our tables/indexes."""
    db = tmp_path / "raw.db"
    sink = InMemorySink()
    for ident in HOSTILE_IDENTIFIERS:
        _emit_run(sink, ident)
    store = SQLiteStore(db)
    try:
        store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in sink.records])
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        kinds = {kind for (kind,) in conn.execute("SELECT type FROM sqlite_master")}
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert kinds <= {"table", "index"}
    assert sorted(names) == TABLES
