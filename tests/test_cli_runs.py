"""Tests for `pipestate runs`: recent runs with whole ids, filters, and no silent empty files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipestate.cli import main

CONFIGS = str(Path(__file__).resolve().parent.parent / "configs")


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A SQLite store with one completed and one failed run."""
    url = f"sqlite:{tmp_path / 'runs.db'}"
    for name in ("test/success/test_success", "test/dependency/test_dependency"):
        main(["run", name, "--org", "acme", "--store", url, "--config-dir", CONFIGS, "--json"])
    return url


def _runs(store: str, *args: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["runs", "--store", store, "--json", *args]) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


class TestRuns:
    """runs lists one row per run, newest first, and filters by pipeline and state."""

    def test_lists_runs(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Both runs appear, newest first, with state and error type."""
        rows = _runs(store, capsys=capsys)
        assert [(r["pipeline_id"], r["state"], r["error_type"]) for r in rows] == [
            ("test-dependency", "FAILED", "PERMANENT"),
            ("test-success", "COMPLETED", None),
        ]

    def test_filters(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--state and --pipeline narrow the list."""
        assert [r["pipeline_id"] for r in _runs(store, "--state", "failed", capsys=capsys)] == [
            "test-dependency"
        ]
        assert _runs(store, "--pipeline", "nope", capsys=capsys) == []

    def test_table_shows_whole_ids(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """The table prints every pipeline_logging_id whole (never cut with an ellipsis)."""
        ids = [str(r["pipeline_logging_id"]) for r in _runs(store, capsys=capsys)]
        assert main(["runs", "--store", store, "--wide"]) == 0
        out = capsys.readouterr().out
        assert "(2 rows)" in out
        assert all(i in out for i in ids)

    def test_missing_file_is_an_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """runs on a SQLite path that does not exist fails and creates no file."""
        path = tmp_path / "absent.db"
        assert main(["runs", "--store", f"sqlite:{path}"]) == 1
        assert "no such file" in capsys.readouterr().err
        assert not path.exists()
