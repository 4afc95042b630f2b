"""`pipestate run --lineage / --otel`: flags and environment switch the exporters on, lazily."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipestate.cli import main
from tests.http_receiver import Receiver, receiving

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = str(ROOT / "configs")

_PROBE = """
import json, sys
from pipestate.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("openlineage", "opentelemetry"))
print(json.dumps({"code": code, "loaded": loaded}))
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PIPESTATE_LINEAGE",
        "PIPESTATE_OTEL",
        "OTEL_TRACES_EXPORTER",
        "OPENLINEAGE_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)


def _run(tmp_path: Path, *args: str) -> int:
    store = f"sqlite:{tmp_path / 'cli.db'}"
    argv = ["run", "test/success/test_success", "--org", "acme", "--store", store]
    return main([*argv, "--config-dir", CONFIGS, "--json", *args])


def _point_at(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)


class TestFlags:
    """The flags and PIPESTATE_LINEAGE / PIPESTATE_OTEL send both standards to the receivers."""

    def test_flags_send_both(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """--lineage --otel: 8 OpenLineage events and at least one OTLP request arrive."""
        with receiving() as receiver:
            _point_at(receiver, monkeypatch)
            assert _run(tmp_path, "--lineage", "--otel") == 0
            lineage = receiver.bodies("/api/v1/lineage")
            traces = receiver.bodies("/v1/traces")
        assert len(lineage) == 8
        assert {json.loads(b)["job"]["namespace"] for b in lineage} == {"acme"}
        assert traces

    def test_environment_switch(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """PIPESTATE_LINEAGE=1 alone turns OpenLineage on and leaves OpenTelemetry off."""
        with receiving() as receiver:
            _point_at(receiver, monkeypatch)
            monkeypatch.setenv("PIPESTATE_LINEAGE", "1")
            assert _run(tmp_path) == 0
            lineage = receiver.bodies("/api/v1/lineage")
            traces = receiver.bodies("/v1/traces")
        assert (len(lineage), traces) == (8, [])

    def test_missing_extra_is_a_usage_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without the library installed: exit 2 and a message naming the extra to install."""
        import persistence.exporters as exporters

        missing = {**exporters.EXTRAS, "otel": ("no-such-distribution", "pip install 'x'")}
        monkeypatch.setattr(exporters, "EXTRAS", missing)
        assert _run(tmp_path, "--otel") == 2
        assert "--otel needs the 'otel' extra" in capsys.readouterr().err


class TestLazyImports:
    """`pipestate run` without the flags never imports either library."""

    def test_plain_run_imports_neither(self, tmp_path: Path) -> None:
        """A fresh interpreter running a pipeline without flags has no openlineage/opentelemetry."""
        argv = ["run", "test/success/test_success", "--org", "acme", "--json"]
        argv += ["--store", f"sqlite:{tmp_path / 'lazy.db'}", "--config-dir", CONFIGS]
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report == {"code": 0, "loaded": []}

    def test_flagged_run_keeps_libraries_in_children(self, tmp_path: Path) -> None:
        """With --lineage --otel the events arrive, yet the CLI's own process imports neither."""
        import os

        argv = ["run", "test/success/test_success", "--org", "acme", "--json", "--lineage"]
        argv += ["--otel", "--store", f"sqlite:{tmp_path / 'iso.db'}", "--config-dir", CONFIGS]
        with receiving() as receiver:
            env = {**os.environ, "OPENLINEAGE_URL": receiver.url}
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
            proc = subprocess.run(
                [sys.executable, "-c", _PROBE, *argv],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            lineage = receiver.bodies("/api/v1/lineage")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report == {"code": 0, "loaded": []}
        assert len(lineage) == 8
