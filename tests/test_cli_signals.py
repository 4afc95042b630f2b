"""SIGTERM and SIGINT end `pipestate run` cleanly: every entity terminal, rows flushed, 143/130."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_and_signal(tmp_path: Path, signum: int) -> tuple[int, Path, str]:
    """Start a run in a subprocess, wait until its first step runs, send `signum`."""
    fifo = tmp_path / "ready.fifo"
    os.mkfifo(fifo)
    config = tmp_path / "wait.yml"
    config.write_text(
        "pipeline_id: wait\ntimeout_minutes: 1\nsteps:\n"
        f"  - {{step_id: hold, processor: tests.cli_ready, config: {{fifo: '{fifo}'}}}}\n"
        "  - {step_id: later, processor: generic.noop, depends_on: [hold]}\n"
    )
    db = tmp_path / "sig.db"
    args = [sys.executable, "-m", "pipestate.cli", "run", str(config), "--org", "acme"]
    args += ["--store", f"sqlite:{db}", "--import", "tests.cli_support"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with open(fifo, encoding="utf-8") as ready:  # blocks until the step has started
            assert ready.readline() == "ready\n"
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, db, out.decode()


def _rows(db: Path) -> list[tuple[str, str, str, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT entity_name, from_state, to_state, reason, metadata "
            "FROM org_meta_state_transitions ORDER BY transition_time, transition_id"
        ).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("signum", "code", "source"), [(signal.SIGTERM, 143, "sigterm"), (signal.SIGINT, 130, "sigint")]
)
def test_signal_cancels_and_flushes(tmp_path: Path, signum: int, code: int, source: str) -> None:
    """The run exits 128+signal with every entity FAILED, marked cancelled by that signal."""
    returncode, db, out = _run_and_signal(tmp_path, signum)
    assert returncode == code
    rows = _rows(db)
    finals = {name: (to, reason, json.loads(meta)) for name, _, to, reason, meta in rows}
    assert set(finals) == {"wait", "hold", "later"}
    for to_state, reason, meta in finals.values():
        assert to_state == "FAILED"
        assert reason.startswith("Cancelled")
        assert (meta["cancelled"], meta["cancel_source"]) == (True, source)
    assert f"cancelled by {source.upper()}" in out
    conn = sqlite3.connect(db)
    try:
        status = conn.execute("SELECT status FROM org_meta_pipeline_runs").fetchall()
    finally:
        conn.close()
    assert status == [("FAILED",)]
