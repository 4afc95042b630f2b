"""Tests for pipestate._cli_summary: bounded run output for large pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipestate._cli_summary import (
    LIVE_STEP_LIMIT,
    TIMELINE_LIMIT,
    failures,
    final_step_states,
    live_rows,
    slowest,
)
from pipestate.cli import main

STEPS = TIMELINE_LIMIT  # each step makes two transitions: well past the limit


def _pipeline(tmp_path: Path, *, failing: bool = False) -> str:
    lines = ["pipeline_id: wide", "steps:"]
    for i in range(STEPS):
        lines += [f"  - step_id: s{i:03d}", "    processor: generic.noop"]
    if failing:
        lines += [
            "  - step_id: broken",
            "    processor: generic.fail",
            "    config: {exception: builtins.PermissionError, message: denied}",
            "  - step_id: after_broken",
            "    processor: generic.noop",
            "    depends_on: [broken]",
        ]
    path = tmp_path / "wide.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _run(tmp_path: Path, *args: str, failing: bool = False) -> int:
    store = f"sqlite:{tmp_path / 'summary.db'}"
    return main(
        ["run", _pipeline(tmp_path, failing=failing), "--org", "o", "--store", store, *args]
    )


class TestRunOutput:
    def test_large_run_prints_a_summary(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Past the limit the output counts steps by state instead of listing every transition."""
        assert _run(tmp_path) == 0
        out = capsys.readouterr().out
        assert f"{2 * STEPS + 2} transitions, {STEPS} steps (COMPLETED {STEPS})" in out
        assert "--all prints the full timeline" in out
        assert out.count("PENDING -> RUNNING") == 1  # the pipeline's row only

    def test_all_prints_every_transition(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--all prints the full timeline: every step's start appears."""
        assert _run(tmp_path, "--all") == 0
        out = capsys.readouterr().out
        assert out.count("PENDING -> RUNNING") == STEPS + 1
        assert "--all prints" not in out

    def test_json_stays_complete(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--json carries every transition whatever the size."""
        assert _run(tmp_path, "--json") == 0
        doc = json.loads(capsys.readouterr().out)
        assert len(doc["timeline"]) == 2 * STEPS + 2

    def test_summary_lists_failures_root_cause_first(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A failed large run shows its failed steps, the root cause before the dependents."""
        assert _run(tmp_path, failing=True) == 1
        out = capsys.readouterr().out
        assert "failed steps (2)" in out
        assert out.index("broken") < out.index("after_broken")
        assert "FAILED 2" in out


def _row(name: str, frm: str, to: str, ms: int = 0, error_type: str | None = None) -> dict:
    return {
        "entity_type": "STEP",
        "entity_name": name,
        "from_state": frm,
        "to_state": to,
        "duration_in_state_ms": ms,
        "error_type": error_type,
    }


class TestPieces:
    def test_final_states_take_the_last_row_per_step(self) -> None:
        """A retried step counts once, in the state its last row entered."""
        rows = [
            _row("a", "RUNNING", "RETRYING"),
            _row("a", "RETRYING", "RUNNING"),
            _row("a", "RUNNING", "COMPLETED"),
        ]
        assert final_step_states(rows) == {"a": "COMPLETED"}

    def test_failures_put_dependency_failures_last(self) -> None:
        """Root causes come before the steps that failed because of them."""
        rows = [
            _row("dep", "PENDING", "FAILED", error_type="DEPENDENCY_FAILURE"),
            _row("root", "RUNNING", "FAILED", error_type="PERMANENT"),
        ]
        assert [r["entity_name"] for r in failures(rows)] == ["root", "dep"]

    def test_slowest_orders_running_time_descending(self) -> None:
        """The slowest list ranks attempts by time spent in RUNNING, longest first."""
        rows = [_row("a", "RUNNING", "COMPLETED", 5), _row("b", "RUNNING", "COMPLETED", 50)]
        rows.append(_row("c", "PENDING", "RUNNING", 500))  # time in PENDING does not count
        assert [r["entity_name"] for r in slowest(rows, 5)] == ["b", "a"]

    def test_live_rows_are_bounded(self) -> None:
        """With many steps the live table shows counts and at most LIVE_STEP_LIMIT running steps."""
        steps = {f"s{i}": ("RUNNING" if i % 2 else "COMPLETED", 0, "") for i in range(1000)}
        rows = live_rows(steps)
        assert len(rows) <= LIVE_STEP_LIMIT + 2
        assert ("(500 steps)", "RUNNING", "", "") in rows

    def test_live_rows_list_every_step_when_few(self) -> None:
        """Small runs keep the full per-step table."""
        steps = {"a": ("RUNNING", 1, ""), "b": ("FAILED", 0, "PERMANENT")}
        assert live_rows(steps) == [("a", "RUNNING", "1", ""), ("b", "FAILED", "0", "PERMANENT")]
