"""Tests for persistence.outbox on the BigQuery emulator: kill -9 mid-run and an outage."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from classifier import RetryPolicy
from persistence import LoggerSettings, MetadataLogger
from persistence.outbox import OutboxStore, open_remote
from persistence.stores.base import STATE_TRANSITIONS
from statemachine import PipelineRun, StepRun, TransitionRecord, TransitionSink
from tests.bq_emulator import PROJECT as BQ_PROJECT
from tests.bq_emulator import BQEmulator, _stop, _wait_ready, emulator_venv, free_port
from tests.outbox_support import outbox_ids, outbox_pending

ROOT = Path(__file__).resolve().parent.parent
KILL_AFTER_EMITTED = 1000  # of the 2,002 transitions a 1,000-step run emits
OUTAGE_SECONDS = float(os.environ.get("PIPESTATE_OUTBOX_OUTAGE_SECONDS", "30"))
RESULTS_FILE = os.environ.get("PIPESTATE_OUTBOX_RESULTS")  # where measured figures are appended


def report(name: str, figures: dict[str, Any]) -> None:
    """Append measured figures (loss window, outage) to PIPESTATE_OUTBOX_RESULTS if set."""
    if RESULTS_FILE:
        with open(RESULTS_FILE, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": name, **figures}) + "\n")


def bq_transition_ids(endpoint: str, project: str, dataset: str) -> list[str]:
    """Read every transition id in the emulator's table, duplicates included."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )
    try:
        sql = f"SELECT transition_id FROM `{project}.{dataset}.{STATE_TRANSITIONS}`"
        return [row["transition_id"] for row in client.query(sql).result()]
    finally:
        client.close()


def bootstrap_dataset(url: str) -> None:
    """Create the dataset and tables on the emulator (PIPESTATE_BQ_ENDPOINT must be set)."""
    from persistence.bootstrap import bootstrap

    remote = open_remote(url)
    try:
        bootstrap(remote)
    finally:
        remote.close()


class RestartableEmulator:
    """An emulator of our own on a fixed port and data directory, so it can stop and restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start (or restart) the server on the same port and data; wait until it answers."""
        venv = emulator_venv()
        log_path = self.workdir / f"emulator-{self.starts}.log"
        self.starts += 1
        argv = [
            str(venv / "bin" / "local-bigquery"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--grpc-port",
            "0",
            "--project",
            BQ_PROJECT,
            "--data-dir",
            str(self.data_dir),
        ]
        env = {**os.environ, "HOME": str(venv / "duckdb_home")}
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        url = f"{self.endpoint}/bigquery/v2/projects/{BQ_PROJECT}/datasets"
        _wait_ready(self.proc, url, log_path)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the data directory stays."""
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


@pytest.fixture
def own_emulator(tmp_path: Path) -> Iterator[RestartableEmulator]:
    """A private emulator this test may stop and restart; always stopped afterwards."""
    if not (emulator_venv() / "bin" / "local-bigquery").exists():
        pytest.skip("BigQuery emulator unavailable (run `make bq-emulator`)")
    emulator = RestartableEmulator(tmp_path / "emulator")
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


class TeeSink:
    """Hands each record to the logger and remembers its id (what was emitted)."""

    def __init__(self, inner: TransitionSink) -> None:
        self.inner = inner
        self.ids: list[str] = []

    def emit(self, record: TransitionRecord) -> None:
        """Remember the id, then forward."""
        self.ids.append(record.transition_id)
        self.inner.emit(record)


@pytest.mark.bigquery
@pytest.mark.slow
class TestOutboxOnBigQuery:
    """Outbox to the BigQuery emulator: crashes and outages lose and duplicate nothing."""

    def test_kill_9_mid_run_ships_every_outbox_row_exactly_once(
        self, bq_emulator: BQEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After kill -9 and recovery, BigQuery holds each row that reached the outbox once."""
        dataset = f"outbox_kill_{uuid.uuid4().hex[:8]}"
        url = f"bigquery:{bq_emulator.project}.{dataset}"
        monkeypatch.setenv("PIPESTATE_BQ_ENDPOINT", bq_emulator.endpoint)
        bootstrap_dataset(url)
        outbox = tmp_path / "outbox.db"
        driver = [sys.executable, "-m", "tests.outbox_driver"]
        common = ["--store", url, "--outbox", str(outbox)]
        child = subprocess.Popen(
            [*driver, "run", *common, "--steps", "1000"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        emitted = 0
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("emitted "):
                emitted = int(line.split()[1])
                # Kill while rows wait in the outbox, so recovery has something to ship.
                if emitted >= KILL_AFTER_EMITTED and (outbox_pending(outbox) or emitted > 1900):
                    os.kill(child.pid, signal.SIGKILL)
                    break
        child.wait(timeout=60)
        # Lines the dead child printed after the one that triggered the kill (it ran on while
        # this loop read and queried): the last one counts every step it finished.
        for line in child.stdout:
            if line.startswith("emitted "):
                emitted = int(line.split()[1])
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL, "the run ended before it could be killed"

        in_outbox = outbox_ids(outbox)
        in_bigquery = bq_transition_ids(bq_emulator.endpoint, bq_emulator.project, dataset)
        reached = set(in_outbox) | set(in_bigquery)
        recovered = subprocess.run(
            [*driver, "recover", *common], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        after = bq_transition_ids(bq_emulator.endpoint, bq_emulator.project, dataset)

        assert len(after) == len(set(after)), "a row reached BigQuery twice"
        assert set(after) == reached
        assert in_outbox, "the kill found the outbox empty: recovery was not exercised"
        loss_window = emitted - len(reached)
        report(
            "kill_9",
            {
                "emitted_at_kill": emitted,
                "in_bigquery_at_kill": len(in_bigquery),
                "in_outbox_at_kill": len(in_outbox),
                "lost_between_emit_and_outbox": loss_window,
            },
        )
        # Only the logger's queue and the batches its workers hold can be lost. The kill may
        # land inside a step, after its two transitions were emitted (and sent) but before its
        # "emitted" line: those two can have reached the outbox uncounted.
        settings = LoggerSettings.from_env()  # what the child's logger used
        unprinted = 2
        assert -unprinted <= loss_window
        assert loss_window <= settings.queue_size + settings.batch_size * settings.workers

    def test_emulator_outage_loses_and_duplicates_nothing(
        self,
        own_emulator: RestartableEmulator,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """With BigQuery down mid-run and back later, every emitted row lands exactly once."""
        url = f"bigquery:{BQ_PROJECT}.outbox_outage"
        monkeypatch.setenv("PIPESTATE_BQ_ENDPOINT", own_emulator.endpoint)
        bootstrap_dataset(url)
        # A short client deadline: the outbox does the retrying, so failures must surface.
        store = OutboxStore(
            open_remote(url, retry_timeout_seconds=2.0),
            tmp_path / "outbox.db",
            batch_size=20,
            upload_interval_seconds=0.05,
            retry_policy=RetryPolicy(base_delay_seconds=0.2, max_delay_seconds=2.0),
        )
        figures = asyncio.run(self._run_with_outage(store, own_emulator))
        assert store.drain(timeout=120) == 0
        status = store.status()
        store.close()
        after = bq_transition_ids(own_emulator.endpoint, BQ_PROJECT, "outbox_outage")
        assert len(after) == len(set(after)), "a row reached BigQuery twice"
        assert sorted(after) == sorted(figures.pop("emitted_ids"))
        assert status["dead_letters_total"] == 0
        report("outage", figures)

    @staticmethod
    async def _run_with_outage(store: OutboxStore, emulator: RestartableEmulator) -> dict[str, Any]:
        """Run steps before, during and after an outage; return what was emitted and seen."""
        async with MetadataLogger(store) as logger:
            sink = TeeSink(logger)
            run = PipelineRun.create("outbox-outage", org_slug="acme", sink=sink)
            run.start()
            counter = 0

            async def steps(n: int) -> None:
                nonlocal counter
                for _ in range(n):
                    step = StepRun.create(f"step_{counter:04d}", pipeline=run)
                    step.start()
                    step.complete()
                    counter += 1
                    await asyncio.sleep(0.01)  # pacing, so uploads overlap the run

            await steps(50)
            await asyncio.to_thread(emulator.stop)
            outage_started = time.monotonic()
            while time.monotonic() - outage_started < OUTAGE_SECONDS:
                await steps(10)
            await logger.flush()
            during = store.status()
            await asyncio.to_thread(emulator.start)
            outage = time.monotonic() - outage_started
            await steps(50)
            run.complete()
            await logger.flush()
        assert during["remote_failures"] > 0, "the uploader never noticed the outage"
        assert during["pending_total"] > 0
        return {
            "emitted_ids": sink.ids,
            "outage_seconds": round(outage, 1),
            "pending_at_end_of_outage": during["pending_total"],
            "remote_failures": during["remote_failures"],
        }
