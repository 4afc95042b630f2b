"""Tests for `pipestate validate`: configs are checked, nothing runs, nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipestate.cli import main

CONFIGS = str(Path(__file__).resolve().parent.parent / "configs")


class TestValidate:
    """validate exits 0 when every config is valid and 2 naming each invalid one."""

    def test_valid_names_and_files(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Names and paths validate; no store file appears."""
        monkeypatch.chdir(tmp_path)
        code = main(
            [
                "validate",
                "test/success/test_success",
                f"{CONFIGS}/test/retry/test_retry.yml",
                "--config-dir",
                CONFIGS,
            ]
        )
        assert code == 0
        assert "2 valid, 0 invalid" in capsys.readouterr().out
        assert list(tmp_path.iterdir()) == []

    def test_invalid_ones_are_named(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad processor and a missing file each get one line; exit code 2."""
        bad = tmp_path / "bad.yml"
        bad.write_text(
            "pipeline_id: bad\ntimeout_minutes: 1\nsteps:\n"
            "  - {step_id: a, processor: acme.not_installed}\n"
        )
        code = main(["validate", str(bad), "no/such/pipe", "--config-dir", CONFIGS, "--json"])
        assert code == 2
        report = json.loads(capsys.readouterr().out)
        assert report["valid"] is False
        errors = [r["error"] for r in report["results"]]
        assert "steps[0].processor: unknown processor 'acme.not_installed'" in errors[0]
        assert "pip install -e ." in errors[0]
        assert "pipeline not found" in errors[1]

    def test_import_option_loads_processors(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--import MODULE registers the processors a config uses."""
        config = tmp_path / "p.yml"
        config.write_text(
            "pipeline_id: p\ntimeout_minutes: 1\nsteps:\n"
            "  - {step_id: a, processor: tests.cli_ready, config: {fifo: x}}\n"
        )
        assert main(["validate", str(config), "--import", "tests.cli_support"]) == 0
        assert main(["validate", str(config), "--import", "no_such_module_xyz"]) == 2
        assert "--import no_such_module_xyz" in capsys.readouterr().err
