"""persistence.verify on BigQuery (the local emulator): the same checks, in BigQuery SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import attrs
import pytest

from persistence.bootstrap import bootstrap
from persistence.stores.base import STATE_TRANSITIONS
from persistence.stores.bigquery import BigQueryStore
from persistence.verify import verify
from statemachine import InMemorySink, PipelineRun, StepRun, TransitionRecord
from tests.bq_emulator import BQEmulator, drop_dataset

pytestmark = pytest.mark.bigquery


@pytest.fixture
def bq_store(bq_emulator: BQEmulator) -> Iterator[BigQueryStore]:
    """A bootstrapped store on a fresh dataset of the session's emulator."""
    store = BigQueryStore(
        bq_emulator.project,
        f"v_{uuid.uuid4().hex[:12]}",
        api_endpoint=bq_emulator.endpoint,
        retry_timeout_seconds=10.0,
    )
    bootstrap(store)
    yield store
    store.close()
    drop_dataset(bq_emulator, store.dataset)


def _trail(org: str) -> list[TransitionRecord]:
    """A finished run: one step retried then completed, one step failed, pipeline FAILED."""
    sink = InMemorySink()
    run = PipelineRun.create("nightly", org_slug=org, sink=sink)
    run.start()
    good = StepRun.create("extract", pipeline=run)
    bad = StepRun.create("load", pipeline=run)
    good.start()
    good.retry(ConnectionError("reset"))
    good.start()
    good.complete()
    bad.start()
    bad.fail(ValueError("bad row"))
    run.fail(ValueError("bad row"))
    return sink.records


def test_clean_and_corrupted_trails(bq_store: BigQueryStore) -> None:
    """Engine-written rows verify clean on BigQuery; a row appended to a finished step is
    reported (broken chain, outside the run) with its ids, and --org scoping still works."""
    records = _trail("acme") + _trail("other")
    bq_store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in records])
    report = verify(bq_store)
    assert report.clean, report.render()
    assert (report.rows, report.runs, report.finished_runs, report.steps) == (len(records), 2, 2, 4)

    done = next(r for r in records if r.org_slug == "acme" and r.to_state == "COMPLETED")
    extra = attrs.evolve(done, transition_id="late-row", from_state="RETRYING", to_state="FAILED")
    bq_store.write_batch(STATE_TRANSITIONS, [extra.to_row()])
    report = verify(bq_store)
    found = {v.kind for v in report.violations if v.transition_id == "late-row"}
    assert "broken-chain" in found
    assert {v.pipeline_logging_id for v in report.violations} == {done.pipeline_logging_id}
    assert verify(bq_store, org="other").clean
