"""Tests for `pipestate purge --older-than DAYS` on SQLite."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pipestate.cli import main

CONFIGS = str(Path(__file__).resolve().parent.parent / "configs")


def _count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM org_meta_state_transitions").fetchone()[0])
    finally:
        conn.close()


class TestPurge:
    """purge deletes rows older than the cut-off, counts first with --dry-run."""

    def test_dry_run_then_purge(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Rows dated before today - DAYS go; --dry-run only counts them."""
        db = tmp_path / "p.db"
        url = f"sqlite:{db}"
        main(
            [
                "run",
                "test/success/test_success",
                "--org",
                "acme",
                "--store",
                url,
                "--config-dir",
                CONFIGS,
                "--json",
            ]
        )
        before = _count(db)
        conn = sqlite3.connect(db)
        with conn:  # age one row by 40 days
            conn.execute(
                "UPDATE org_meta_state_transitions SET transition_date = '2000-01-01' "
                "WHERE rowid = (SELECT MIN(rowid) FROM org_meta_state_transitions)"
            )
        conn.close()
        capsys.readouterr()
        assert main(["purge", "--older-than", "30", "--store", url, "--dry-run", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["rows"]["org_meta_state_transitions"] == 1
        assert _count(db) == before
        assert main(["purge", "--older-than", "30", "--store", url]) == 0
        assert "Deleted 1 row older than 30 days" in capsys.readouterr().out
        assert _count(db) == before - 1

    def test_bigquery_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        """purge names why it does not apply to BigQuery (partition expiration does it)."""
        assert main(["purge", "--older-than", "5", "--store", "bigquery:p.d"]) != 0
