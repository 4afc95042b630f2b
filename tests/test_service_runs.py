"""RunManager across the thread boundary: the API loop admits, the runner loop runs pipelines.

In-process, on real parts: a RunnerLoop thread, one MetadataLogger on it, a SQLite store; the
test's own asyncio.run loop plays the API loop.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from executor.processors import ProcessorContext, processor
from persistence import MetadataLogger
from persistence.bootstrap import bootstrap
from persistence.stores.sqlite import SQLiteStore
from pipestate.service._runner import RunnerLoop
from pipestate.service.errors import Unprocessable
from pipestate.service.metrics import ServiceMetrics
from pipestate.service.runs import RunManager, _RunIds
from pipestate.service.settings import ServiceSettings

ORG = "runs_org"
BOUND = 20.0  # every wait below is bounded; a healthy run takes milliseconds
_HELD = threading.Event()  # set by tests.hold_runner_loop once it blocks the runner loop
_RELEASE = threading.Event()  # the test sets it to let that processor return


@processor("tests.hold_runner_loop")
async def hold_runner_loop(context: ProcessorContext, config: Mapping[str, Any]) -> None:
    """Block the loop it runs on until released (a processor that blocks its event loop)."""
    _HELD.set()
    if not _RELEASE.wait(BOUND):  # a blocking wait is the point: the runner loop stands still
        raise RuntimeError("never released: the test could not run while this loop was held")


HOLD_YML = """\
pipeline_id: hold
steps:
  - {step_id: hold, processor: tests.hold_runner_loop}
"""
NOOP_YML = "pipeline_id: noop\nsteps:\n  - {step_id: one, processor: generic.noop}\n"
SLOW_YML = """\
pipeline_id: slow
steps:
  - {step_id: wait, processor: generic.slow_processor, config: {sleep_seconds: 60}}
"""


@attrs.frozen
class Service:
    """The pieces a service process runs: manager, runner loop, logger and store file."""

    runs: RunManager
    runner: RunnerLoop
    logger: MetadataLogger
    db: Path

    def rows(self, run_id: str) -> list[dict[str, Any]]:
        """The stored transitions of one run, after this process's rows were flushed."""
        assert self.runner.submit(self.logger.flush(BOUND)).result(BOUND + 1)
        conn = sqlite3.connect(self.db)
        conn.row_factory = sqlite3.Row
        try:
            cursor = conn.execute(
                "SELECT entity_type, entity_name, to_state, metadata "
                "FROM org_meta_state_transitions WHERE pipeline_logging_id = ?",
                (run_id,),
            )
            return [dict(row) for row in cursor]
        finally:
            conn.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A RunManager whose runs and logger live on a started RunnerLoop."""
    configs = tmp_path / "configs" / "t" / "svc"
    configs.mkdir(parents=True)
    for name, text in {"hold": HOLD_YML, "noop": NOOP_YML, "slow": SLOW_YML}.items():
        (configs / f"{name}.yml").write_text(text)
    store = SQLiteStore(tmp_path / "audit.db")
    bootstrap(store)
    runner = RunnerLoop()
    runner.start()
    logger = MetadataLogger(store, derive_run_rows=True)
    runner.submit(logger.start()).result(BOUND)
    # Every submit checks its config file here; the cache window has a test of its own.
    settings = ServiceSettings(config_dir=str(tmp_path / "configs"), config_cache_seconds=0)
    runs = RunManager(settings, logger, store=store, metrics=ServiceMetrics(), runner=runner)
    _HELD.clear()
    _RELEASE.clear()
    try:
        yield Service(runs, runner, logger, tmp_path / "audit.db")
    finally:
        _RELEASE.set()
        runner.submit(runs.close()).result(BOUND)
        runner.submit(logger.stop()).result(BOUND)
        runner.stop()
        store.close()


def test_a_submit_is_answered_while_a_pipeline_blocks_the_runner_loop(service: Service) -> None:
    """start() returns (the run admitted, still PENDING) while another run holds the runner loop."""

    async def api() -> tuple[str, bool]:
        held = await service.runs.start(ORG, "t/svc/hold", {}, key_id="k1")
        assert await asyncio.to_thread(_HELD.wait, BOUND), "the holding step never started"
        second = await service.runs.start(ORG, "t/svc/noop", {}, key_id="k1")
        state_while_held = second.view().state
        released_before = _RELEASE.is_set()
        _RELEASE.set()
        await service.runs.wait(held, BOUND)
        await service.runs.wait(second, BOUND)
        assert held.view().state == "COMPLETED"
        assert second.view().state == "COMPLETED"
        return state_while_held, released_before

    state_while_held, released_before = asyncio.run(api())
    assert state_while_held == "PENDING"  # admitted and handed over, not yet run
    assert released_before is False  # answered before the runner loop was free again


def test_a_cancel_sent_before_the_run_starts_still_ends_it_failed_and_marked(
    service: Service,
) -> None:
    """A cancel that reaches the runner loop before the pipeline runs is delivered once it does."""
    gate = threading.Event()
    service.runner.call_soon(gate.wait, BOUND)  # hold the runner loop: start and cancel queue up

    async def api() -> str:
        run = await service.runs.start(ORG, "t/svc/slow", {}, key_id="k1")
        service.runs.cancel(ORG, run.pipeline_logging_id, by="k1")
        gate.set()
        await service.runs.wait(run, BOUND)
        assert run.view().state == "FAILED"
        return run.pipeline_logging_id

    run_id = asyncio.run(api())
    rows = service.rows(run_id)
    pipeline = [r for r in rows if r["entity_type"] == "PIPELINE"]
    assert [r["to_state"] for r in pipeline] == ["RUNNING", "FAILED"]
    meta = json.loads(pipeline[-1]["metadata"])
    assert (meta["cancelled"], meta["cancel_source"], meta["cancelled_by"]) == (True, "api", "k1")


def test_close_cancels_live_runs_as_shutdown_across_the_thread_boundary(service: Service) -> None:
    """close() from the API loop ends every live run FAILED, its rows marked as a shutdown."""

    async def api() -> list[str]:
        started = [await service.runs.start(ORG, "t/svc/slow", {}, key_id="k1") for _ in range(3)]
        assert service.runs.running == 3
        await service.runs.close(BOUND)
        assert all(run.view().done for run in started)
        assert service.runs.running == 0
        return [run.pipeline_logging_id for run in started]

    for run_id in asyncio.run(api()):
        rows = service.rows(run_id)
        final = {(r["entity_type"], r["entity_name"]): r for r in rows}
        assert {r["to_state"] for r in final.values()} == {"FAILED"}
        assert json.loads(final[("PIPELINE", "slow")]["metadata"])["cancel_source"] == "shutdown"


def test_an_edited_or_removed_config_is_read_again(service: Service, tmp_path: Path) -> None:
    """A cached config is used while its file is unchanged; an edit or a removal is seen."""
    path = tmp_path / "configs" / "t" / "svc" / "noop.yml"

    async def api() -> tuple[set[str], set[str], str | None]:
        first = await service.runs.start(ORG, "t/svc/noop", {}, key_id="k1")
        await service.runs.wait(first, BOUND)
        path.write_text(NOOP_YML.replace("step_id: one", "step_id: edited_step"))
        second = await service.runs.start(ORG, "t/svc/noop", {}, key_id="k1")
        await service.runs.wait(second, BOUND)
        path.unlink()
        with pytest.raises(Unprocessable) as refused:
            await service.runs.start(ORG, "t/svc/noop", {}, key_id="k1")
        return set(first.view().steps), set(second.view().steps), refused.value.extra.get("state")

    first_steps, second_steps, refused_state = asyncio.run(api())
    assert first_steps == {"one"}
    assert second_steps == {"edited_step"}
    assert refused_state == "FAILED"  # the seed's trail for a pipeline that does not exist


def test_a_cached_config_is_trusted_without_a_check_within_its_window(
    service: Service, tmp_path: Path
) -> None:
    """Within config_cache_seconds a submit uses the cached config: an edit shows only after."""
    path = tmp_path / "configs" / "t" / "svc" / "noop.yml"
    service.runs.settings = attrs.evolve(service.runs.settings, config_cache_seconds=3600)

    async def api() -> tuple[set[str], set[str], set[str]]:
        first = await service.runs.start(ORG, "t/svc/noop", {}, key_id="k1")
        await service.runs.wait(first, BOUND)
        path.write_text(NOOP_YML.replace("step_id: one", "step_id: edited_step"))
        cached = await service.runs.start(ORG, "t/svc/noop", {}, key_id="k1")
        await service.runs.wait(cached, BOUND)
        service.runs.settings = attrs.evolve(service.runs.settings, config_cache_seconds=0)
        checked = await service.runs.start(ORG, "t/svc/noop", {}, key_id="k1")
        await service.runs.wait(checked, BOUND)
        return set(first.view().steps), set(cached.view().steps), set(checked.view().steps)

    first_steps, cached_steps, checked_steps = asyncio.run(api())
    assert first_steps == cached_steps == {"one"}  # inside the window: no check, no re-read
    assert checked_steps == {"edited_step"}  # the window over: the edit is seen


def test_run_ids_are_distinct_random_uuid4_across_pool_refills() -> None:
    """Pooled run ids are valid version-4 UUIDs, all distinct, also past a pool refill."""
    ids = _RunIds()
    drawn = [ids.next() for _ in range(600)]  # more than two pools of 256
    parsed = [uuid.UUID(value) for value in drawn]
    assert len(set(drawn)) == len(drawn)
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert all(str(u) == value for u, value in zip(parsed, drawn, strict=True))


def test_a_wait_ends_at_its_bound_and_leaves_the_run_then_ends_with_it(service: Service) -> None:
    """wait() returns at its bound with the run still live, and at once when the run ends."""

    async def api() -> tuple[bool, bool, int, int]:
        held = await service.runs.start(ORG, "t/svc/hold", {}, key_id="k1")
        assert await asyncio.to_thread(_HELD.wait, BOUND), "the holding step never started"
        await service.runs.wait(held, 0.05)  # the bound passes first
        done_at_bound = held.done
        _RELEASE.set()
        await service.runs.wait(held, BOUND)
        return (
            done_at_bound,
            held.done,
            len(held.view().timeline),
            len(held.view(timeline=True).timeline),
        )

    done_at_bound, done_after, plain_rows, rows = asyncio.run(api())
    assert done_at_bound is False
    assert done_after is True
    assert plain_rows == 0  # a plain view builds no timeline rows
    assert rows == 2 * 2  # PENDING -> RUNNING -> COMPLETED for the pipeline and its one step


def test_a_finished_run_keeps_no_collector_tracked_timeline(service: Service) -> None:
    """A finished run keeps its timeline as atoms only: nothing a full collection must walk."""

    async def api() -> list[Any]:
        run = await service.runs.start(ORG, "t/svc/noop", {}, key_id="k1")
        await service.runs.wait(run, BOUND)
        return list(run.timeline)

    kept = asyncio.run(api())
    gc.collect()  # a young collection untracks tuples of atoms; records would stay tracked
    assert len(kept) == 2 * 2
    assert [entry for entry in kept if gc.is_tracked(entry)] == []
