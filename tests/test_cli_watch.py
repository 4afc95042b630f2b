"""`pipestate watch / recover / alerts check`: a SIGKILLed run recovered end to end, exit codes."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from persistence.bootstrap import bootstrap
from persistence.stores.sqlite import SQLiteStore
from persistence.verify import verify
from pipestate.cli import main
from statemachine.spec import PIPELINE, STEP
from tests.watch_support import Runs, write_lease

HEARTBEAT = 0.2
MISSED = 4
INTERVAL = 0.25
SWEEP_SLACK = 0.25  # a shared 2-core machine: the sweep itself and scheduling
PIPELINE_YAML = """\
pipeline_id: slow-one
steps:
  - step_id: first
    processor: generic.noop
  - step_id: long
    processor: generic.slow_processor
    depends_on: [first]
    config: {sleep_seconds: 60}
"""


def _cli(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from pipestate.cli import main; sys.exit(main())",
        *args,
    ]


def _rows(db: Path) -> list[dict[str, Any]]:
    store = SQLiteStore(db)
    try:
        return store.run_sql(
            "SELECT entity_type, entity_name, step_logging_id, from_state, to_state, "
            "transition_time, metadata FROM {org_meta_state_transitions} ORDER BY transition_time",
            {},
        )
    finally:
        store.close()


def _poll(what: str, check: Any, proc: subprocess.Popen[bytes] | None, timeout: float) -> Any:
    """Wait for another process's effect in the store (there is no event to wait on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        time.sleep(0.02)  # polling a child process's writes, not our own worker
    raise AssertionError(f"{what}: not seen within {timeout} s")


@pytest.mark.slow
class TestKilledRunIsRecovered:
    """A real `pipestate run` killed mid-step is ended FAILED by a real `pipestate watch`."""

    def test_sigkill_then_watch(self, tmp_path: Path) -> None:
        """Every entity ends FAILED on legal edges; latency < lease expiry + one sweep interval."""
        db = tmp_path / "p.db"
        (tmp_path / "slow.yml").write_text(PIPELINE_YAML)
        bootstrap(SQLiteStore(db))
        env = {
            **os.environ,
            "PIPESTATE_HEARTBEAT_SECONDS": str(HEARTBEAT),
            "PIPESTATE_LEASE_MISSED_HEARTBEATS": str(MISSED),
            "METADATA_LOG_FLUSH_INTERVAL_SECONDS": "0.05",
        }
        store_url = f"sqlite:{db}"
        watch = subprocess.Popen(
            _cli("watch", "--store", store_url, "--interval", str(INTERVAL)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        run = subprocess.Popen(
            _cli(
                "run", str(tmp_path / "slow.yml"), "--org", "acme", "--store", store_url, "--json"
            ),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _poll(
                "long step RUNNING",
                lambda: any(
                    r["entity_name"] == "long" and r["to_state"] == "RUNNING" for r in _rows(db)
                ),
                run,
                30,
            )
            run.send_signal(signal.SIGKILL)
            killed_at = dt.datetime.now(dt.UTC)
            run.wait(10)
            ended = _poll(
                "pipeline terminal row",
                lambda: [
                    r
                    for r in _rows(db)
                    if r["entity_type"] == "PIPELINE" and r["to_state"] == "FAILED"
                ],
                watch,
                30,
            )
            watch.send_signal(signal.SIGTERM)
            _, err = watch.communicate(timeout=20)
        finally:
            for proc in (run, watch):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        latency = (
            dt.datetime.fromisoformat(ended[0]["transition_time"]) - killed_at
        ).total_seconds()
        bound = HEARTBEAT * MISSED + INTERVAL
        print(
            f"\nrecovery latency (SIGKILL -> terminal row): {latency:.3f} s (bound {bound:.2f} s)"
        )
        # The bound, plus SWEEP_SLACK for the sweep's own run time and process scheduling: a
        # kill just after a heartbeat waits the whole lease, then up to a whole interval.
        assert latency < bound + SWEEP_SLACK
        assert watch.returncode == 0
        assert b"stopped after" in err
        rows = _rows(db)
        for row in rows:  # legal edges only
            table = PIPELINE if row["entity_type"] == "PIPELINE" else STEP
            assert (row["from_state"], row["to_state"]) in {(e.source, e.dest) for e in table.edges}
        final: dict[str, str] = {}
        for row in rows:
            final[row["step_logging_id"] or "pipeline"] = row["to_state"]
        assert sorted(final.values()) == ["COMPLETED", "FAILED", "FAILED"]  # first, long, pipeline
        assert sum('"cancel_source": "recovery"' in r["metadata"] for r in rows) == 2
        store = SQLiteStore(db)
        try:
            report = verify(store)  # pipeline and step chains obey the joint rules too
        finally:
            store.close()
        assert report.clean, report.violations


def _store_with_permanent_failure(db: Path) -> None:
    store = SQLiteStore(db)
    runs = Runs()
    now = dt.datetime.now(dt.UTC)
    runs.add("bill", now, "billing", "PENDING", "RUNNING")
    runs.add("bill", now, "billing", "RUNNING", "FAILED", error_type="PERMANENT")
    runs.write(store)
    store.close()


class TestAlertsCheck:
    """alerts check: exit 1 when something fires, 0 when nothing does, 2 on a bad rules file."""

    def test_firing_exits_1(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A PERMANENT failure makes the default rules fire."""
        db = tmp_path / "a.db"
        _store_with_permanent_failure(db)
        assert main(["alerts", "check", "--store", f"sqlite:{db}", "--no-notify"]) == 1
        assert "FIRING critical permanent-failure" in capsys.readouterr().out

    def test_quiet_exits_0(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An empty store fires nothing."""
        assert main(["alerts", "check", "--store", f"sqlite:{tmp_path / 'e.db'}"]) == 0
        assert "no alerts firing" in capsys.readouterr().out

    def test_bad_rules_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A wrong field is named with the file, the rule and what was expected."""
        rules = tmp_path / "rules.yml"
        rules.write_text("rules:\n  - {name: r, kind: failure_rate, threshold: lots}\n")
        code = main(
            ["alerts", "check", "--store", f"sqlite:{tmp_path / 'e.db'}", "--rules", str(rules)]
        )
        assert code == 2
        err = capsys.readouterr().err
        assert "expected float, got str 'lots' @ " in err
        assert "$.rules[0].threshold" in err


class TestRecover:
    """recover: one sweep from the command line."""

    def test_recovers_and_reports(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A run with a long-dead lease is recovered and named in the output."""
        db = tmp_path / "r.db"
        store = SQLiteStore(db)
        runs = Runs()
        recently = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
        runs.crashed("dead", recently)
        runs.write(store)
        write_lease(store, "dead", recently + dt.timedelta(minutes=1))
        store.close()
        assert main(["recover", "--store", f"sqlite:{db}"]) == 0
        assert "dead: recovered (3 entities)" in capsys.readouterr().out
        assert main(["recover", "--store", f"sqlite:{db}"]) == 0
        assert "no orphaned runs" in capsys.readouterr().out
