"""Where the runs execute: RunnerLoop (a thread of its own) or ServingLoop (the serving loop).

In-process on real parts (RunManager, MetadataLogger, SQLite) for which thread and loop run a
pipeline's steps; then a real `pipestate serve` in the runner that is not the default, through
the seed's success path and a SIGTERM drain (the rest of the service tests run the default).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from executor.processors import ProcessorContext, processor
from persistence import MetadataLogger
from persistence.bootstrap import bootstrap
from persistence.stores.sqlite import SQLiteStore
from pipestate.cli import main
from pipestate.service._runner import RUNNERS, RunnerLoop, ServingLoop
from pipestate.service.metrics import ServiceMetrics
from pipestate.service.runs import RunManager
from pipestate.service.settings import DEFAULT_RUNNER, RUNNER_CHOICES, ServiceSettings
from tests.service_support import create_key, make_config_dir, run_server, sqlite_rows

ORG = "runner_org"
BOUND = 20.0  # every wait is bounded; a healthy run takes milliseconds
OTHER = next(mode for mode in RUNNER_CHOICES if mode != DEFAULT_RUNNER)
_SEEN: list[tuple[int, asyncio.AbstractEventLoop]] = []  # (thread id, loop) of each step run


@processor("tests.where_it_runs")
async def where_it_runs(context: ProcessorContext, config: Mapping[str, Any]) -> None:
    """Record the thread and the loop this step runs on."""
    _SEEN.append((threading.get_ident(), asyncio.get_running_loop()))


WHERE_YML = """\
pipeline_id: where
steps:
  - {step_id: a, processor: tests.where_it_runs}
  - {step_id: b, processor: tests.where_it_runs, depends_on: [a]}
"""


async def _one_run(tmp_path: Path, mode: str) -> tuple[list[Any], str, int]:
    """Run `where` once through a RunManager on runner `mode`; (steps seen, state, rows)."""
    configs = tmp_path / "configs" / "t" / "svc"
    configs.mkdir(parents=True)
    (configs / "where.yml").write_text(WHERE_YML)
    store = SQLiteStore(tmp_path / "audit.db")
    bootstrap(store)
    runner = RUNNERS[mode]()
    await runner.open()
    logger = MetadataLogger(store, derive_run_rows=True)
    await runner.call(logger.start())
    settings = ServiceSettings(config_dir=str(tmp_path / "configs"), runner=mode)
    runs = RunManager(settings, logger, store=store, metrics=ServiceMetrics(), runner=runner)
    _SEEN.clear()
    try:
        run = await runs.start(ORG, "t/svc/where", {}, key_id="k1")
        await runs.wait(run, BOUND)
        assert await runs.flush(BOUND)
    finally:
        await runs.close()
        await runner.call(logger.stop())
        await runner.close()
        store.close()
    conn = sqlite3.connect(tmp_path / "audit.db")
    try:
        (stored,) = conn.execute(
            "SELECT COUNT(*) FROM org_meta_state_transitions WHERE pipeline_logging_id = ?",
            (run.pipeline_logging_id,),
        ).fetchone()
    finally:
        conn.close()
    return list(_SEEN), run.view().state, stored


def test_serving_loop_runs_the_steps_on_the_serving_loop_itself(tmp_path: Path) -> None:
    """Runner "loop": every step runs on the caller's loop and thread, and all rows are stored."""

    async def serving() -> tuple[list[Any], str, int, int, asyncio.AbstractEventLoop]:
        seen, state, stored = await _one_run(tmp_path, "loop")
        return seen, state, stored, threading.get_ident(), asyncio.get_running_loop()

    seen, state, stored, thread, loop = asyncio.run(serving())
    assert state == "COMPLETED"
    assert seen == [(thread, loop), (thread, loop)]
    assert stored == 6  # PIPELINE PENDING->RUNNING->COMPLETED, 2 steps x (RUNNING, COMPLETED)


def test_runner_thread_runs_the_steps_on_a_loop_of_its_own(tmp_path: Path) -> None:
    """Runner "thread": the steps run on one other thread and loop, and all rows are stored."""

    async def serving() -> tuple[list[Any], str, int, int, asyncio.AbstractEventLoop]:
        seen, state, stored = await _one_run(tmp_path, "thread")
        return seen, state, stored, threading.get_ident(), asyncio.get_running_loop()

    seen, state, stored, thread, loop = asyncio.run(serving())
    assert state == "COMPLETED"
    assert len(seen) == 2
    assert seen[0] == seen[1]
    assert seen[0][0] != thread
    assert seen[0][1] is not loop
    assert stored == 6


def test_serving_loop_takes_calls_from_other_threads_onto_its_loop() -> None:
    """call() and call_soon() from another thread land on the serving loop, in order."""
    landed: list[tuple[str, int]] = []

    async def serving() -> int:
        runner = ServingLoop()
        await runner.open()

        async def coro(tag: str) -> str:
            landed.append((tag, threading.get_ident()))
            return tag

        def elsewhere() -> str:
            runner.call_soon(lambda: landed.append(("soon", threading.get_ident())))
            return runner.submit(coro("submit")).result(BOUND)

        assert await asyncio.to_thread(elsewhere) == "submit"
        assert await runner.call(coro("inline")) == "inline"
        assert runner.in_thread
        await runner.close()
        with pytest.raises(RuntimeError, match="not running"):
            runner.call_soon(print)
        return threading.get_ident()

    thread = asyncio.run(serving())
    assert landed == [("soon", thread), ("submit", thread), ("inline", thread)]


def test_the_runner_setting_is_validated_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """runner is "thread" or "loop" ($PIPESTATE_SERVE_RUNNER, --runner); else one clear error."""
    assert ServiceSettings().runner == DEFAULT_RUNNER
    assert set(RUNNERS) == set(RUNNER_CHOICES)
    assert RUNNERS["thread"] is RunnerLoop
    assert RUNNERS["loop"] is ServingLoop
    monkeypatch.setenv("PIPESTATE_SERVE_RUNNER", OTHER)
    assert ServiceSettings.from_env().runner == OTHER
    assert ServiceSettings.from_env(runner=DEFAULT_RUNNER).runner == DEFAULT_RUNNER
    expected = r"ServiceSettings.runner must be one of .*\(got 'fibre'\)"
    with pytest.raises(ValueError, match=expected):
        ServiceSettings(runner="fibre")
    monkeypatch.setenv("PIPESTATE_SERVE_RUNNER", "fibre")
    assert main(["serve", "--store", f"sqlite:{tmp_path / 's.db'}", "--port", "0"]) == 2
    assert "--runner" in capsys.readouterr().err


def test_the_other_runner_serves_runs_and_drains_on_sigterm(tmp_path: Path) -> None:
    """A real server on the non-default runner: runs complete with every row; SIGTERM drains, 0."""
    workdir = tmp_path
    db = workdir / "audit.db"
    with run_server(
        workdir,
        store=f"sqlite:{db}",
        config_dir=make_config_dir(workdir),
        args=["--runner", OTHER, "--grace-seconds", "1"],
    ) as server:
        headers = {"X-API-Key": create_key(server, ORG)["api_key"]}
        with server.client() as client:
            done = [
                client.post(
                    f"/api/v1/pipelines/run/{ORG}/test/bench/noop10?wait=true", headers=headers
                ).json()
                for _ in range(5)
            ]
            slow = [
                client.post(f"/api/v1/pipelines/run/{ORG}/test/slow/slow", headers=headers).json()
                for _ in range(4)
            ]
            server.proc.send_signal(signal.SIGTERM)
            began = time.monotonic()
            code = server.proc.wait(timeout=BOUND)
        took = time.monotonic() - began
        log = server.log_text()
    assert code == 0, log[-2000:]
    assert took < BOUND
    assert {d["state"] for d in done} == {"COMPLETED"}
    rows = sqlite_rows(
        db,
        "SELECT pipeline_logging_id, entity_type, to_state, metadata "
        "FROM org_meta_state_transitions WHERE org_slug = ?",
        (ORG,),
    )
    per_run: dict[str, int] = {}
    for row in rows:
        per_run[row["pipeline_logging_id"]] = per_run.get(row["pipeline_logging_id"], 0) + 1
    assert all(per_run[d["pipeline_logging_id"]] == 22 for d in done)
    ends = {
        r["pipeline_logging_id"]: json.loads(r["metadata"]).get("cancel_source")
        for r in rows
        if r["entity_type"] == "PIPELINE" and r["to_state"] == "FAILED"
    }
    assert {ends.get(s["pipeline_logging_id"]) for s in slow} == {"shutdown"}
