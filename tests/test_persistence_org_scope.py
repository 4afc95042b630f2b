"""Org scoping: every catalog query with org_slug=X answers exactly as it does on a store that
holds only X's rows (SQLite, and BigQuery on the emulator); select_rows reads by equality."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persistence import SQLiteStore
from persistence.queries import CATALOG, QueryError, run_query
from persistence.stores.base import API_KEYS, STATE_TRANSITIONS, StoreError
from statemachine.records import TransitionRecord
from tests.bq_emulator import BQEmulator, drop_dataset
from tests.test_persistence_parity import NOW, realistic_history

ORGS = ("acme", "globex")


def _params(name: str, records: list[TransitionRecord], org: str) -> dict[str, Any]:
    """Deterministic parameters for a query (a run of `org` for the timeline)."""
    if name == "timeline":
        run = next(r.pipeline_logging_id for r in records if r.org_slug == org)
        return {"pipeline_logging_id": run}
    if name == "stuck":
        return {"now": NOW}
    return {"as_of": NOW.date(), "days": 30}


@pytest.fixture(scope="module")
def records() -> list[TransitionRecord]:
    """Ten days of runs of two orgs."""
    return realistic_history().records


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, records: list[TransitionRecord]
) -> Iterator[dict[str, SQLiteStore]]:
    """One store with every org's rows and one per org with only its own."""
    base = tmp_path_factory.mktemp("scope")
    out = {"all": SQLiteStore(base / "all.db")}
    out["all"].write_records(STATE_TRANSITIONS, records)
    for org in ORGS:
        out[org] = SQLiteStore(base / f"{org}.db")
        out[org].write_records(STATE_TRANSITIONS, [r for r in records if r.org_slug == org])
    yield out
    for store in out.values():
        store.close()


@pytest.mark.parametrize("org", ORGS)
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_scoped_query_equals_the_org_alone(
    stores: dict[str, SQLiteStore], records: list[TransitionRecord], name: str, org: str
) -> None:
    """Invariant: query(all rows, org_slug=X) == query(only X's rows), for every query."""
    params = _params(name, records, org)
    scoped = run_query(stores["all"], name, org_slug=org, **params)
    alone = run_query(stores[org], name, **params)
    assert scoped == alone
    other = next(o for o in ORGS if o != org)
    if name != "timeline":  # a run id of `org` under the other org's scope finds nothing
        return
    assert run_query(stores["all"], name, org_slug=other, **params) == []


def test_scoping_changes_the_answer() -> None:
    """Without org_slug the query sees both orgs (the scope is not a no-op)."""
    history = realistic_history().records
    store = SQLiteStore(":memory:")
    try:
        store.write_records(STATE_TRANSITIONS, history)
        both = run_query(store, "runs", as_of=NOW.date(), days=30, limit=1000)
        acme = run_query(store, "runs", as_of=NOW.date(), days=30, limit=1000, org_slug="acme")
    finally:
        store.close()
    assert {r["org_slug"] for r in both} == set(ORGS)
    assert {r["org_slug"] for r in acme} == {"acme"}


@pytest.mark.parametrize("org", ["", "../x", "a b", "x" * 200, 5])
def test_bad_org_slug_is_a_query_error(stores: dict[str, SQLiteStore], org: Any) -> None:
    """org_slug must be an identifier; anything else is a QueryError naming it."""
    with pytest.raises(QueryError, match="org_slug"):
        run_query(stores["all"], "failures", org_slug=org)


def test_runs_query_filters_by_state_and_pipeline(
    stores: dict[str, SQLiteStore], records: list[TransitionRecord]
) -> None:
    """runs returns one row per run with its latest state; state and pipeline_id filter it."""
    rows = run_query(stores["acme"], "runs", as_of=NOW.date(), days=30, limit=1000)
    runs = {r.pipeline_logging_id for r in records if r.org_slug == "acme"}
    pipeline_runs = {
        r.pipeline_logging_id
        for r in records
        if r.org_slug == "acme" and r.entity_type == "PIPELINE"
    }
    assert {r["pipeline_logging_id"] for r in rows} == pipeline_runs
    assert pipeline_runs <= runs
    failed = run_query(
        stores["acme"], "runs", as_of=NOW.date(), days=30, limit=1000, state="FAILED"
    )
    assert failed
    assert {r["state"] for r in failed} == {"FAILED"}
    assert all(r["end_time"] for r in failed)


def test_select_rows_reads_by_equality_only(tmp_path: Path) -> None:
    """select_rows binds values and refuses non-STRING or unknown columns."""
    store = SQLiteStore(tmp_path / "k.db")
    try:
        row = {
            "event_id": "k1:CREATED",
            "key_id": "k1",
            "org_slug": "acme",
            "event_type": "CREATED",
            "event_time": NOW,
            "event_date": NOW.date(),
        }
        store.write_batch(API_KEYS, [row])
        assert [r["event_id"] for r in store.select_rows(API_KEYS, {"key_id": "k1"})] == [
            "k1:CREATED"
        ]
        assert store.select_rows(API_KEYS, {"key_id": "k1' OR '1'='1"}) == []
        with pytest.raises(StoreError, match="not a STRING column"):
            store.select_rows(API_KEYS, {"event_time": "x"})
        with pytest.raises(StoreError, match="not a STRING column"):
            store.select_rows(API_KEYS, {"nope": "x"})
    finally:
        store.close()


@pytest.mark.bigquery
@pytest.mark.slow
def test_bigquery_scoped_queries_match_sqlite(
    bq_emulator: BQEmulator, stores: dict[str, SQLiteStore], records: list[TransitionRecord]
) -> None:
    """On the emulator, every query scoped to acme equals SQLite's answer on acme alone."""
    from persistence.stores.bigquery import BigQueryStore

    dataset = "org_scope"
    store = BigQueryStore(bq_emulator.project, dataset, api_endpoint=bq_emulator.endpoint)
    try:
        from persistence.bootstrap import bootstrap

        bootstrap(store)
        store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in records])
        # The scope is one rule for every query (tested on SQLite above): three suffice here.
        for name in ("runs", "failures", "timeline"):
            params = _params(name, records, "acme")
            assert run_query(store, name, org_slug="acme", **params) == run_query(
                stores["acme"], name, **params
            ), name
        keys = store.select_rows(API_KEYS, {"key_id": "none"})
        assert keys == []
    finally:
        store.close()
        drop_dataset(bq_emulator, dataset)
