"""`pipestate verify`: summary and violations printed, exit 0 clean, 1 violations, 2 errors."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from persistence.logger import MetadataLogger
from persistence.stores.sqlite import SQLiteStore
from pipestate.cli import main
from statemachine import PipelineRun, StepRun


def _trail(db: Path) -> str:
    """One finished run with one retried step; returns the pipeline_logging_id."""

    async def go() -> str:
        async with MetadataLogger(SQLiteStore(db)) as logger:
            run = PipelineRun.create("nightly", org_slug="acme", sink=logger)
            run.start()
            step = StepRun.create("extract", pipeline=run)
            step.start()
            step.retry(ConnectionError("reset"))
            step.start()
            step.complete()
            run.complete()
            return run.pipeline_logging_id

    return asyncio.run(go())


def test_clean_store_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trail written by the engine: the summary says no violations, exit code 0."""
    db = tmp_path / "ok.db"
    _trail(db)
    assert main(["verify", "--store", f"sqlite:{db}"]) == 0
    out = capsys.readouterr().out
    assert "Checked 6 rows: 1 runs (1 finished" in out
    assert "No violations." in out


def test_violations_exit_one_and_name_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deleted middle row: exit 1, the kind, the run id and the row id are printed; --json
    carries the same violation."""
    db = tmp_path / "bad.db"
    run_id = _trail(db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM org_meta_state_transitions WHERE to_state = 'RETRYING'")
        [(tid,)] = conn.execute(
            "SELECT transition_id FROM org_meta_state_transitions WHERE from_state = 'RETRYING'"
        ).fetchall()
    conn.close()
    assert main(["verify", "--store", f"sqlite:{db}"]) == 1
    out = capsys.readouterr().out
    assert "broken-chain: 1" in out
    assert run_id in out
    assert tid in out
    assert main(["verify", "--store", f"sqlite:{db}", "--json", "--run", run_id]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["clean"] is False
    assert tid in {v["transition_id"] for v in data["violations"] if v["kind"] == "broken-chain"}
    assert main(["verify", "--store", f"sqlite:{db}", "--run", "another-run"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "expected a date YYYY-MM-DD"),
        (["--since", "2025-02-01", "--until", "2025-01-01"], "is after --until"),
        (["--tolerance-ms", "-5"], "-5"),
    ],
)
def test_bad_options_exit_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A malformed option is a usage error (exit 2) naming what was wrong."""
    db = tmp_path / "ok.db"
    _trail(db)
    assert main(["verify", "--store", f"sqlite:{db}", *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_store_exits_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A SQLite path that does not exist is reported, not created, with exit code 2."""
    db = tmp_path / "none.db"
    assert main(["verify", "--store", f"sqlite:{db}"]) == 2
    assert "no SQLite store" in capsys.readouterr().err
    assert not db.exists()


def test_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`pipestate --help` lists verify (registered in the lazy command table)."""
    assert main(["--help"]) == 0
    assert "verify" in capsys.readouterr().out
