"""The README's "From Python" example runs as printed, from any directory."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python_example() -> str:
    """The first python code block after the line starting 'From Python'."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text[text.index("\nFrom Python") :]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_from_python_example_runs_anywhere(tmp_path: Path) -> None:
    """Run from an unrelated directory, it completes and fills the run and step tables."""
    script = tmp_path / "example.py"
    script.write_text(_python_example(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("COMPLETED ")
    conn = sqlite3.connect(tmp_path / "audit.db")
    try:
        runs = conn.execute("SELECT status FROM org_meta_pipeline_runs").fetchall()
        steps = conn.execute(
            "SELECT step_name, attempt, status FROM org_meta_step_logs ORDER BY step_name, attempt"
        ).fetchall()
    finally:
        conn.close()
    assert runs == [("COMPLETED",)]
    assert steps == [
        ("extract", 1, "FAILED"),
        ("extract", 2, "COMPLETED"),
        ("load", 1, "COMPLETED"),
    ]
