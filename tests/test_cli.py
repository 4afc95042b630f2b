"""Tests for the `pipestate` CLI, called in-process through main(argv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipestate.cli import main

CONFIGS = str(Path(__file__).resolve().parent.parent / "configs")


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A fresh SQLite store URL."""
    return f"sqlite:{tmp_path / 'cli.db'}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PIPESTATE_STORE", "PIPESTATE_ORG", "PIPESTATE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)


def _run(store: str, *args: str) -> int:
    return main(["run", *args, "--store", store, "--config-dir", CONFIGS])


class TestRun:
    """`pipestate run` exit codes, output and configuration precedence."""

    def test_success_exit_zero(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A completed pipeline exits 0 and prints its timeline and final state."""
        assert _run(store, "test/success/test_success", "--org", "acme") == 0
        out = capsys.readouterr().out
        assert "pipeline test-success: COMPLETED" in out
        assert "extract_data" in out
        assert "RUNNING -> COMPLETED" in out

    def test_failure_exit_one(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A failed pipeline exits 1 and names the error type."""
        assert _run(store, "test/dependency/test_dependency", "--org", "acme") == 1
        assert "FAILED (PERMANENT)" in capsys.readouterr().out

    def test_missing_pipeline_exit_two(
        self, store: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A missing pipeline exits 2 with one error line and no traceback."""
        assert _run(store, "invalid/domain/pipeline", "--org", "acme") == 2
        captured = capsys.readouterr()
        assert "FAILED (VALIDATION_ERROR)" in captured.out
        errors = [line for line in captured.err.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1
        assert "pipeline not found" in errors[0]
        assert "Traceback" not in captured.err

    def test_json(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints one JSON document with the result and the stored timeline."""
        assert _run(store, "test/retry/test_retry", "--org", "acme", "--json") == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["result"]["state"] == "COMPLETED"
        assert doc["result"]["retry_counts"] == {"fetch_api": 2}
        assert [r["to_state"] for r in doc["timeline"]][-1] == "COMPLETED"
        assert len(doc["timeline"]) == 8

    def test_org_required(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Without --org or $PIPESTATE_ORG the run is a usage error (exit 2)."""
        assert _run(store, "test/success/test_success") == 2
        assert "--org is required" in capsys.readouterr().err

    def test_invalid_org(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """An unsafe org slug is refused with exit 2 and one line."""
        assert _run(store, "test/success/test_success", "--org", "../evil") == 2
        assert "org_slug" in capsys.readouterr().err

    def test_env_then_flag_precedence(
        self, store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Environment fills in missing flags; a flag beats the environment."""
        monkeypatch.setenv("PIPESTATE_ORG", "from_env")
        monkeypatch.setenv("PIPESTATE_STORE", "nosuchscheme:x")
        assert _run(store, "test/success/test_success", "--json") == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["result"]["state"] == "COMPLETED"
        code = main(["run", "test/success/test_success", "--config-dir", CONFIGS])
        assert code == 2
        assert "nosuchscheme" in capsys.readouterr().err

    def test_config_dir_from_env(
        self, store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """$PIPESTATE_CONFIG_DIR locates pipelines when --config-dir is absent."""
        monkeypatch.setenv("PIPESTATE_CONFIG_DIR", CONFIGS)
        code = main(["run", "test/success/test_success", "--org", "a", "--store", store])
        assert code == 0

    def test_bad_logger_env(
        self, store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad METADATA_LOG_* variable is a configuration error naming the variable."""
        monkeypatch.setenv("METADATA_LOG_BATCH_SIZE", "lots")
        assert _run(store, "test/success/test_success", "--org", "acme") == 2
        assert "METADATA_LOG_BATCH_SIZE" in capsys.readouterr().err

    def test_debug_shows_traceback(
        self, store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--debug adds the traceback that is otherwise hidden."""
        monkeypatch.setenv("METADATA_LOG_BATCH_SIZE", "lots")
        assert _run(store, "test/success/test_success", "--org", "acme", "--debug") == 2
        assert "Traceback" in capsys.readouterr().err


class TestOtherCommands:
    """bootstrap, query and diagram hang off the same entry point."""

    def test_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help lists the commands and exits 0."""
        assert main(["--help"]) == 0
        out = capsys.readouterr().out
        for command in ("run", "bootstrap", "query", "diagram"):
            assert command in out

    def test_unknown_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown command is a usage error."""
        assert main(["frobnicate"]) == 2

    def test_bootstrap_dry_run(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """bootstrap --dry-run reports and exits 0."""
        assert main(["bootstrap", "--store", store, "--dry-run"]) == 0
        assert capsys.readouterr().out.strip()

    def test_query_after_run(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """query failures --json returns the failure counts of earlier runs."""
        _run(store, "test/dependency/test_dependency", "--org", "acme")
        capsys.readouterr()
        assert main(["query", "failures", "--store", store, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert {r["error_type"]: r["failure_count"] for r in rows} == {
            "PERMANENT": 2,
            "DEPENDENCY_FAILURE": 2,
        }

    def test_query_param(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--param passes query parameters (timeline by pipeline_logging_id)."""
        _run(store, "test/success/test_success", "--org", "acme", "--json")
        plid = json.loads(capsys.readouterr().out)["result"]["pipeline_logging_id"]
        code = main(
            ["query", "timeline", "--store", store, "-p", f"pipeline_logging_id={plid}", "--json"]
        )
        assert code == 0
        assert len(json.loads(capsys.readouterr().out)) == 8

    def test_unknown_query(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown query name exits 2 with one line."""
        assert main(["query", "nope", "--store", store]) == 2
        assert "nope" in capsys.readouterr().err

    def test_bad_param_syntax(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A --param without '=' is a usage error."""
        assert main(["query", "timeline", "--store", store, "-p", "oops"]) == 2

    @pytest.mark.parametrize("kind", ["pipeline", "step"])
    def test_diagram(self, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
        """diagram prints Mermaid stateDiagram-v2 text."""
        assert main(["diagram", kind]) == 0
        assert "stateDiagram-v2" in capsys.readouterr().out
