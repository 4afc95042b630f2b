"""`pipestate report`: one self-contained HTML file per org or run, from a real SQLite store."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipestate.cli import main
from tests.dashboard_data import HOSTILE_PIPELINE

MAX_REPORT_BYTES = 5_000_000


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PIPESTATE_STORE", "PIPESTATE_ORG"):
        monkeypatch.delenv(name, raising=False)


def _report(db: Path, out: Path, *args: str) -> int:
    """Run the command in-process."""
    return main(["report", "--store", f"sqlite:{db}", "--out", str(out), *args])


class TestReport:
    """The report file is complete, offline and small enough."""

    def test_overview_report(self, dashboard_db: Any, tmp_path: Path) -> None:
        """The org report inlines plotly.js, has the four charts and loads nothing remote."""
        out = tmp_path / "report.html"
        assert _report(dashboard_db[0], out, "--org", "acme", "--as-of", "2026-03-02") == 0
        html = out.read_text(encoding="utf-8")
        assert out.stat().st_size <= MAX_REPORT_BYTES
        for chart in ("fig-errors", "fig-retries", "fig-transitions", "fig-failures"):
            assert f'id="{chart}"' in html
        assert "Plotly" in html
        assert not re.search(r"<script[^>]+src=", html)
        markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.DOTALL)
        assert not re.search(r"""(src|href)=["']?https?:""", markup)
        assert "Content-Security-Policy" in html
        assert dashboard_db[1]["dependency"] in html
        assert HOSTILE_PIPELINE not in html  # only its escaped form

    def test_run_report(self, dashboard_db: Any, tmp_path: Path) -> None:
        """--run writes that run's page with its Gantt chart."""
        out = tmp_path / "run.html"
        run_id = dashboard_db[1]["dependency"]
        assert _report(dashboard_db[0], out, "--org", "acme", "--run", run_id) == 0
        html = out.read_text(encoding="utf-8")
        assert 'id="fig-gantt"' in html
        assert "DEPENDENCY_FAILURE" in html

    def test_other_orgs_run_is_unknown(
        self, dashboard_db: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Asking for another org's run fails with one line naming the org and the run."""
        out = tmp_path / "run.html"
        run_id = dashboard_db[1]["dependency"]
        assert _report(dashboard_db[0], out, "--org", "globex", "--run", run_id) == 1
        assert f"org 'globex' has no run '{run_id}'" in capsys.readouterr().err
        assert not out.exists()

    def test_org_is_required(self, dashboard_db: Any, tmp_path: Path) -> None:
        """Without --org the command is a usage error (exit 2)."""
        assert _report(dashboard_db[0], tmp_path / "r.html") == 2

    def test_run_command_does_not_import_the_ui(self) -> None:
        """`pipestate run`'s import path stays free of plotly, jinja2 and fastapi."""
        code = (
            "import sys, pipestate.cli, pipestate._cli_run; "
            "print(sorted(m for m in ('plotly', 'jinja2', 'fastapi') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == "[]", out.stderr
