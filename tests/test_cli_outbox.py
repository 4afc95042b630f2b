"""Tests for pipestate.cli_outbox: `pipestate outbox status` and `pipestate outbox flush`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from persistence.outbox import OutboxStore
from persistence.stores.base import STATE_TRANSITIONS
from pipestate.cli_outbox import outbox
from tests.outbox_support import GatedRemote, rows


def fill(path: Path, n: int, *, poison: set[str] | None = None) -> None:
    """Leave n rows in an outbox file (the remote is down), plus dead letters for `poison`."""
    remote = GatedRemote()
    store = OutboxStore(remote, path, upload_interval_seconds=3600.0, query_drain_timeout=0.0)
    if poison:
        remote.poison = poison
        store.write_batch(STATE_TRANSITIONS, rows(len(poison), prefix="bad"))
        store.drain(timeout=10)
    remote.outage = True
    store.write_batch(STATE_TRANSITIONS, rows(n))
    store.close(timeout=0)


class TestOutboxCli:
    """The outbox command group: read-only status, flush to a store."""

    def test_status_of_a_missing_file_says_nothing_is_pending(self, tmp_path: Path) -> None:
        """status on a path with no outbox reports nothing pending and does not create the file."""
        path = tmp_path / "none.db"
        result = CliRunner().invoke(outbox, ["status", "--outbox", str(path)])
        assert result.exit_code == 0, result.output
        assert "nothing pending" in result.output
        assert not path.exists()

    def test_status_json_counts_pending_and_dead_letters(self, tmp_path: Path) -> None:
        """status --json reports pending rows per table and dead letters with their errors."""
        path = tmp_path / "outbox.db"
        fill(path, 3, poison={"bad00000"})
        result = CliRunner().invoke(outbox, ["status", "--outbox", str(path), "--json"])
        assert result.exit_code == 0, result.output
        status = json.loads(result.output)
        assert status["pending"] == {STATE_TRANSITIONS: 3}
        assert status["dead_letters_total"] == 1
        assert status["recent_dead_letters"][0]["row_id"] == "bad00000"

    def test_status_text_names_the_tables(self, tmp_path: Path) -> None:
        """The human status lists each table with pending rows."""
        path = tmp_path / "outbox.db"
        fill(path, 2)
        result = CliRunner().invoke(outbox, ["status", "--outbox", str(path)])
        assert result.exit_code == 0, result.output
        assert f"{STATE_TRANSITIONS}: 2" in result.output

    def test_flush_ships_everything_to_the_store(self, tmp_path: Path) -> None:
        """flush moves every pending row into the named store and exits 0."""
        path = tmp_path / "outbox.db"
        fill(path, 4)
        target = tmp_path / "remote.db"
        result = CliRunner().invoke(
            outbox, ["flush", "--outbox", str(path), "--store", f"sqlite:{target}"]
        )
        assert result.exit_code == 0, result.output
        assert "shipped 4 rows" in result.output
        with sqlite3.connect(target) as conn:
            stored = conn.execute(f"SELECT COUNT(*) FROM {STATE_TRANSITIONS}").fetchone()[0]
        assert stored == 4

    def test_flush_without_a_store_is_a_usage_error(self, tmp_path: Path) -> None:
        """flush needs --store (or PIPESTATE_STORE) and says so."""
        path = tmp_path / "outbox.db"
        fill(path, 1)
        result = CliRunner().invoke(
            outbox, ["flush", "--outbox", str(path)], env={"PIPESTATE_STORE": ""}
        )
        assert result.exit_code == 2
        assert "--store" in result.output

    def test_flush_exits_1_when_rows_are_left(self, tmp_path: Path) -> None:
        """flush that cannot ship (store unreachable) keeps the rows and exits 1."""
        path = tmp_path / "outbox.db"
        fill(path, 2)
        blocker = tmp_path / "file"
        blocker.write_text("x")
        result = CliRunner().invoke(
            outbox,
            ["flush", "--outbox", str(path), "--store", f"sqlite:{blocker}/r.db", "--timeout", "0"],
        )
        assert result.exit_code == 1, result.output
        assert "2 pending" in result.output

    def test_registered_in_the_pipestate_cli(self, tmp_path: Path) -> None:
        """`pipestate outbox status` runs through pipestate.cli.main."""
        from pipestate.cli import main

        assert main(["outbox", "status", "--outbox", str(tmp_path / "none.db")]) == 0
