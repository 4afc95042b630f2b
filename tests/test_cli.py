"""Tests for the `pipestate` CLI, called in-process through main(argv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from persistence.schema import load_table_specs
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


class _StartUpObject:
    """Stands for what start-up leaves alive (modules, config, a google client)."""


class TestRunCollector:
    """What the cyclic collector may walk while `pipestate run` runs its steps."""

    def test_a_run_freezes_what_was_alive_before_it(
        self, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """During the steps no collection can reach an object alive before the run (a full one
        walked ~40 ms of start-up heap mid-burst, rows queued meanwhile were lost on SIGKILL);
        after the run returns the collector reaches it again."""
        import gc

        from executor.processors import register, unregister

        old = _StartUpObject()
        reachable: list[bool] = []

        async def probe(context: object, config: object) -> None:
            reachable.append(any(obj is old for obj in gc.get_objects()))
            made_now = _StartUpObject()
            reachable.append(any(obj is made_now for obj in gc.get_objects()))

        (tmp_path / "p.yml").write_text(
            "pipeline_id: gc-probe\nsteps:\n  - step_id: probe\n    processor: test.gc_probe\n"
        )
        register("test.gc_probe", probe, replace=True)
        try:
            code = main(["run", str(tmp_path / "p.yml"), "--org", "acme", "--store", store])
        finally:
            unregister("test.gc_probe")
        assert code == 0, capsys.readouterr()
        # old: frozen out of reach; an object the step made: collectable as usual.
        assert reachable == [False, True]
        assert any(obj is old for obj in gc.get_objects())


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

    def test_bootstrap_dry_run(
        self, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """bootstrap --dry-run reports every table and creates no file."""
        assert main(["bootstrap", "--store", store, "--dry-run"]) == 0
        assert capsys.readouterr().out.count("create table") == len(load_table_specs())
        assert list(tmp_path.iterdir()) == []

    def test_bootstrap_creates_the_directory(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """bootstrap of a SQLite file in a new directory creates both."""
        db = tmp_path / "a" / "b.db"
        assert main(["bootstrap", "--store", f"sqlite:{db}"]) == 0
        assert db.exists()

    def test_query_after_run(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """query failures --json returns the failure counts of earlier runs."""
        _run(store, "test/dependency/test_dependency", "--org", "acme")
        capsys.readouterr()
        assert main(["query", "failures", "--store", store, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        # The failed step counts once (not again as the pipeline it failed).
        assert {r["error_type"]: r["failure_count"] for r in rows} == {
            "PERMANENT": 1,
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


class TestStoreFirst:
    """The store is opened and checked before the first step; its failure never hides the run."""

    def test_sqlite_parent_directory_created(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A SQLite path in a directory that does not exist yet gets its directory."""
        db = tmp_path / "new" / "dir" / "x.db"
        assert _run(f"sqlite:{db}", "test/success/test_success", "--org", "acme") == 0
        assert db.exists()

    def test_unusable_store_runs_nothing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A store that cannot be created is refused before any step runs: exit 1, one line."""
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        code = main(
            [
                "run",
                "test/success/test_success",
                "--org",
                "acme",
                "--config-dir",
                CONFIGS,
                "--store",
                f"sqlite:{blocker}/x.db",
            ]
        )
        assert code == 1
        captured = capsys.readouterr()
        assert "nothing was run" in captured.err
        assert "timeline" not in captured.out

    def test_store_failing_mid_run_shows_the_outcome(
        self, store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Writes that fail after the check: the result is still printed, with a warning, exit 1."""
        from persistence.stores.base import StoreError
        from persistence.stores.sqlite import SQLiteStore

        def refuse(self: object, *args: object, **kwargs: object) -> None:
            raise StoreError("disk I/O error", retryable=False)

        monkeypatch.setattr(SQLiteStore, "write_records", refuse)
        monkeypatch.setattr(SQLiteStore, "write_batch", refuse)
        monkeypatch.setattr(SQLiteStore, "write_many", refuse)  # the logger's group commit
        assert _run(store, "test/success/test_success", "--org", "acme") == 1
        captured = capsys.readouterr()
        assert "pipeline test-success: COMPLETED" in captured.out
        assert "did not take every audit row" in captured.err


class TestCliDetails:
    """--version, query help, wording, offline BigQuery dry run, missing stores."""

    def test_version_from_package_metadata(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--version prints the installed version, the same as pipestate.__version__."""
        from importlib.metadata import version

        import pipestate

        assert main(["--version"]) == 0
        out = capsys.readouterr().out
        assert version("pipestate") in out
        assert pipestate.__version__ == version("pipestate")

    def test_query_help_lists_parameters(self, capsys: pytest.CaptureFixture[str]) -> None:
        """query --help names every query and its parameters."""
        assert main(["query", "--help"]) == 0
        out = capsys.readouterr().out
        for text in ("retries", "runs", "include_cancelled", "pipeline_logging_id", "min_duration"):
            assert text in out

    def test_query_on_missing_file_is_an_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """query on a SQLite path that does not exist fails and does not create it."""
        path = tmp_path / "absent.db"
        assert main(["query", "failures", "--store", f"sqlite:{path}"]) == 1
        assert not path.exists()

    def test_one_row_wording(self, store: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A one-row answer says '(1 row)'; a one-step pipeline 'The step completed'."""
        _run(store, "test/retry/test_retry", "--org", "acme")
        assert "The step completed" in capsys.readouterr().out
        assert main(["query", "failures", "--store", store, "-p", "include_cancelled=1"]) == 0
        assert main(["query", "retries", "--store", store]) == 0
        assert "(1 row)" in capsys.readouterr().out

    def test_bigquery_dry_run_is_offline(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """bootstrap --dry-run on BigQuery needs no credentials and prints the DDL."""
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/creds.json")
        code = main(["bootstrap", "--store", "bigquery:my-project.organizations", "--dry-run"])
        assert code == 0
        out = capsys.readouterr().out
        assert "CREATE TABLE IF NOT EXISTS `my-project.organizations.org_meta_step_logs`" in out
        assert "PARTITION BY transition_date" in out

    def test_bigquery_dry_run_refuses_bad_names(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A project name BigQuery would refuse is a usage error, not DDL."""
        assert main(["bootstrap", "--store", "bigquery:Bad_Project;x", "--dry-run"]) == 2

    def test_svg_error_names_the_option(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without Graphviz, --format svg fails naming --format mermaid (not fmt=...)."""
        monkeypatch.setenv("PATH", "")
        assert main(["diagram", "step", "--format", "svg"]) == 1
        err = capsys.readouterr().err
        assert "--format mermaid" in err
        assert "fmt=" not in err


def test_help_imports_no_engine_package() -> None:
    """Loading the CLI (as `pipestate --help` does) imports no engine package or the catalog."""
    import subprocess
    import sys

    code = (
        "import sys, pipestate.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('persistence', 'statemachine', 'executor', 'classifier')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
