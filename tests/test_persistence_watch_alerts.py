"""Alert rules on hand-built stores with known answers; incidents; SQLite/BigQuery parity."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from persistence.bootstrap import bootstrap
from persistence.stores.base import RUN_LEASES, STATE_TRANSITIONS, Store
from persistence.stores.bigquery import BigQueryStore
from persistence.stores.sqlite import SQLiteStore
from persistence.watch._sql import SQL
from persistence.watch.alerts import advance_incidents, evaluate
from persistence.watch.rules import (
    AlertConfig,
    FailureRateRule,
    PermanentFailureRule,
    RetriesExhaustedRule,
    StuckRule,
)
from statemachine.records import TransitionRecord
from tests.bq_emulator import BQEmulator, drop_dataset
from tests.strategies.watch import WATCH_NOW, lease_rows, watch_records
from tests.watch_support import LIVE_OWNER, NOW, Runs, write_lease

AT = NOW + dt.timedelta(minutes=5)
RULES = (
    StuckRule(name="stuck", running_for_minutes=0.5),
    FailureRateRule(name="rate", window_minutes=60, threshold=0.5, min_count=3),
    RetriesExhaustedRule(name="retries", window_minutes=60, min_retries=1),
    PermanentFailureRule(name="permanent", window_minutes=60),
)


def history() -> Runs:
    """Runs whose alerts are known (see each test)."""
    runs = Runs()
    start = NOW - dt.timedelta(minutes=1)
    runs.crashed("dead", start)
    runs.crashed("alive", start)
    for i in range(3):
        runs.finished(f"t{i}", start - dt.timedelta(minutes=10 * i), error_type="TRANSIENT")
    runs.finished("ok", start)
    runs.finished("old", NOW - dt.timedelta(hours=3), error_type="TRANSIENT")  # out of window
    runs.add("bill", start, "billing", "PENDING", "RUNNING")
    runs.add("bill", start, "billing", "RUNNING", "FAILED", error_type="PERMANENT",
             error_message="401 Unauthorized: password=hunter2")  # fmt: skip
    # A step that retried twice, then failed for good, and its pipeline.
    runs.add("retry", start, "etl", "PENDING", "RUNNING")
    runs.add("retry", start, "flaky", "PENDING", "RUNNING", step="retry-s")
    for n in (1, 2):
        runs.add("retry", start, "flaky", "RUNNING", "RETRYING", step="retry-s",
                 error_type="TRANSIENT", retry_count=n - 1)  # fmt: skip
        runs.add("retry", start, "flaky", "RETRYING", "RUNNING", step="retry-s", retry_count=n)
    runs.add("retry", NOW, "flaky", "RUNNING", "FAILED", step="retry-s",
             error_type="TRANSIENT", retry_count=2)  # fmt: skip
    runs.add("retry", NOW, "etl", "RUNNING", "FAILED", error_type="TRANSIENT")
    # Cancelled rows count for nothing.
    cancelled = {"cancelled": True, "cancel_source": "sigterm"}
    runs.add("cxl", start, "etl", "PENDING", "RUNNING")
    runs.add("cxl", start, "x", "PENDING", "RUNNING", step="cxl-s")
    runs.add("cxl", NOW, "x", "RUNNING", "FAILED", step="cxl-s", error_type="TRANSIENT",
             retry_count=3, metadata=cancelled)  # fmt: skip
    runs.add("cxl", NOW, "etl", "RUNNING", "FAILED", error_type="PERMANENT", metadata=cancelled)
    return runs


def load(store: Store) -> Store:
    """The history and its leases in `store`."""
    history().write(store)
    write_lease(store, "dead", NOW)
    write_lease(store, "alive", AT, owner=LIVE_OWNER)
    return store


def _by_rule(store: Store, now: dt.datetime = AT) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for firing in evaluate(store, RULES, now=now):
        out.setdefault(firing.rule_name, []).append(firing)
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """The history in a fresh SQLite file."""
    return load(SQLiteStore(tmp_path / "alerts.db"))


class TestRules:
    """Each rule on the hand-built history gives exactly the known firings."""

    def test_stuck_hung_and_orphaned(self, store: Store) -> None:
        """Entities RUNNING > 30 s: the dead run's are orphaned, the live run's are hung."""
        got = {
            (f.details["kind"], f.pipeline_logging_id, f.entity_name)
            for f in _by_rule(store)["stuck"]
        }
        assert got == {
            ("orphaned", "dead", "etl"),
            ("orphaned", "dead", "load"),
            ("hung", "alive", "etl"),
            ("hung", "alive", "load"),
        }

    def test_stuck_threshold(self, store: Store) -> None:
        """Nothing has been RUNNING for 10 minutes."""
        rule = StuckRule(name="s", running_for_minutes=10)
        assert evaluate(store, [rule], now=AT) == []

    def test_failure_rate(self, store: Store) -> None:
        """4 of 6 non-cancelled outcomes were TRANSIENT: one firing; PERMANENT (1) is too few."""
        (firing,) = _by_rule(store)["rate"]
        assert firing.error_type == "TRANSIENT"
        assert firing.details == {"failures": 4, "total": 6, "rate": 0.6667}
        assert firing.dedup_key == "failure_rate:rate:TRANSIENT:*"

    def test_failure_rate_per_pipeline(self, store: Store) -> None:
        """Scoped to pipeline billing, only its one PERMANENT failure counts (min_count 1)."""
        rule = FailureRateRule(name="b", pipeline="billing", threshold=1.0, min_count=1)
        (firing,) = evaluate(store, [rule], now=AT)
        assert (firing.error_type, firing.details["total"]) == ("PERMANENT", 1)

    def test_retries_exhausted(self, store: Store) -> None:
        """Only the step that failed TRANSIENT after 2 retries (not the cancelled one, not rc 0)."""
        (firing,) = _by_rule(store)["retries"]
        assert firing.details["step_logging_id"] == "retry-s"
        assert firing.details["retry_count"] == 2

    def test_permanent_failure_redacted(self, store: Store) -> None:
        """The billing run fires; its message is redacted; the cancelled PERMANENT run does not."""
        (firing,) = _by_rule(store)["permanent"]
        assert firing.pipeline_logging_id == "bill"
        assert "hunter2" not in firing.summary
        assert "401 Unauthorized" in firing.summary


class TestIncidents:
    """An incident fires once, reminds after the interval, resolves when it clears."""

    def test_fire_remind_resolve(self, store: Store) -> None:
        """FIRED, nothing, REMINDED, RESOLVED: four rows with one incident id."""
        config = AlertConfig(rules=(RULES[3],), remind_after_minutes=10)

        def cycle(now: dt.datetime) -> list[str]:
            firing = evaluate(store, config.rules, now=now)
            return [e.event for e in advance_incidents(store, config, firing, now=now)]

        assert cycle(AT) == ["FIRED"]
        assert cycle(AT + dt.timedelta(minutes=1)) == []
        assert cycle(AT + dt.timedelta(minutes=11)) == ["REMINDED"]
        assert cycle(AT + dt.timedelta(minutes=12)) == []
        assert cycle(AT + dt.timedelta(hours=2)) == ["RESOLVED"]  # out of the 60 min window
        assert cycle(AT + dt.timedelta(hours=3)) == []
        rows = store.run_sql(  # type: ignore[attr-defined]
            "SELECT event, incident_id, dedup_key FROM {org_meta_alerts} ORDER BY alert_time", {}
        )
        assert [r["event"] for r in rows] == ["FIRED", "REMINDED", "RESOLVED"]
        assert len({r["incident_id"] for r in rows}) == 1
        assert rows[0]["dedup_key"] == "permanent_failure:permanent:bill"

    def test_refiring_opens_a_new_incident(self, store: Store) -> None:
        """After a RESOLVED, the same key firing again is a new incident."""
        config = AlertConfig(rules=(RULES[3],))
        advance_incidents(store, config, evaluate(store, config.rules, now=AT), now=AT)
        advance_incidents(store, config, [], now=AT + dt.timedelta(minutes=1))
        again = advance_incidents(
            store, config, evaluate(store, config.rules, now=AT), now=AT + dt.timedelta(minutes=2)
        )
        assert [e.event for e in again] == ["FIRED"]
        rows = store.run_sql("SELECT DISTINCT incident_id FROM {org_meta_alerts}", {})  # type: ignore[attr-defined]
        assert len(rows) == 2


class TestDialects:
    """Both dialects bind the same parameters in every statement."""

    def test_same_parameters(self) -> None:
        """A parameter in one dialect's statement is in the other's too."""
        import re

        for name, sqlite_sql in SQL["sqlite"].items():
            sqlite_params = set(re.findall(r":([A-Za-z_]\w*)", sqlite_sql))
            bq_params = set(re.findall(r"@([A-Za-z_]\w*)", SQL["bigquery"][name]))
            assert sqlite_params == bq_params, name


def _bq(emulator: BQEmulator) -> BigQueryStore:
    store = BigQueryStore(
        emulator.project,
        f"alerts_{uuid.uuid4().hex[:12]}",
        api_endpoint=emulator.endpoint,
        retry_timeout_seconds=10.0,
    )
    bootstrap(store)
    return store


@pytest.fixture(scope="module")
def bq_history(bq_emulator: BQEmulator) -> Iterator[BigQueryStore]:
    """The history on the emulator."""
    store = _bq(bq_emulator)
    load(store)
    yield store
    store.close()
    drop_dataset(bq_emulator, store.dataset)


def _plain(firings: list[Any]) -> list[dict[str, Any]]:
    return [attrs.asdict(f) for f in firings]


@pytest.mark.bigquery
class TestParity:
    """SQLite and BigQuery fire the same alerts on the same rows."""

    def test_history(self, store: Store, bq_history: BigQueryStore) -> None:
        """Every rule's firings are equal, field by field, on both stores."""
        expected = _plain(evaluate(store, RULES, now=AT))
        assert len(expected) >= 7
        assert _plain(evaluate(bq_history, RULES, now=AT)) == expected

    @settings(
        max_examples=3,
        deadline=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        records=st.lists(watch_records(), max_size=30),
        leases=st.lists(lease_rows(), max_size=8),
    )
    def test_generated_stores(
        self,
        generated_pair: tuple[SQLiteStore, BigQueryStore],
        records: list[TransitionRecord],
        leases: list[dict[str, Any]],
    ) -> None:
        """Invariant: for any transitions and leases, both stores fire identical alerts.

        Examples accumulate in one pair of stores (ids never repeat): a dataset per example
        would cost seconds of bootstrap each, and equal inputs still demand equal answers.
        """
        rules = (
            StuckRule(name="s", running_for_minutes=1),
            FailureRateRule(name="f", window_minutes=180, threshold=0.0, min_count=1),
            RetriesExhaustedRule(name="r", window_minutes=180, min_retries=0),
            PermanentFailureRule(name="p", window_minutes=180),
        )
        for target in generated_pair:
            if records:
                target.write_batch(STATE_TRANSITIONS, [r.to_row() for r in records])
            if leases:
                target.write_batch(RUN_LEASES, leases)
        sqlite, bigquery = generated_pair
        expected = _plain(evaluate(sqlite, rules, now=WATCH_NOW))
        assert _plain(evaluate(bigquery, rules, now=WATCH_NOW)) == expected


@pytest.fixture(scope="module")
def generated_pair(
    bq_emulator: BQEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SQLiteStore, BigQueryStore]]:
    """An empty SQLite file and an empty emulator dataset that the property test fills."""
    sqlite = SQLiteStore(tmp_path_factory.mktemp("gen") / "gen.db")
    bigquery = _bq(bq_emulator)
    yield sqlite, bigquery
    sqlite.close()
    bigquery.close()
    drop_dataset(bq_emulator, bigquery.dataset)
