"""`pipestate keys` and `pipestate serve` from the CLI; the run path never imports the service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipestate.cli import main
from pipestate.service.keys import KeyRing
from tests.service_support import ROOT, sqlite_rows


class TestKeysCommand:
    """create, list and revoke on the store itself."""

    def test_create_list_revoke(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A created key authenticates; list never shows it; revoke disables it."""
        store = f"sqlite:{tmp_path / 'k.db'}"
        assert main(["keys", "create", "acme", "--name", "ci", "--store", store, "--json"]) == 0
        created = json.loads(capsys.readouterr().out)
        assert main(["keys", "list", "--org", "acme", "--store", store, "--json"]) == 0
        listed = capsys.readouterr().out
        assert created["api_key"] not in listed
        assert json.loads(listed)[0]["key_id"] == created["key_id"]
        assert main(["keys", "revoke", created["key_id"], "--store", store]) == 0
        assert "revoked" in capsys.readouterr().out
        rows = sqlite_rows(tmp_path / "k.db", "SELECT event_type, actor FROM org_api_keys")
        assert sorted((r["event_type"], r["actor"]) for r in rows) == [
            ("CREATED", "cli"),
            ("REVOKED", "cli"),
        ]
        from persistence import SQLiteStore

        backend = SQLiteStore(tmp_path / "k.db")
        try:
            assert KeyRing(backend).authenticate(created["api_key"]) is None
        finally:
            backend.close()

    def test_bad_org_and_unknown_key_are_usage_errors(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A hostile org slug and an unknown key id exit 2 with one line."""
        store = f"sqlite:{tmp_path / 'k.db'}"
        assert main(["keys", "create", "../etc", "--store", store]) == 2
        assert main(["keys", "revoke", "0123456789abcdef", "--store", store]) == 2
        assert "no key" in capsys.readouterr().err


def test_run_path_never_imports_the_service() -> None:
    """`import executor` and `pipestate run` load neither fastapi, uvicorn nor prometheus."""
    code = (
        "import sys, tempfile, os\n"
        "import executor, executor.runner\n"
        "from pipestate.cli import main\n"
        "d = tempfile.mkdtemp()\n"
        "rc = main(['run', 'test/success/test_success', '--org', 'acme', '--store',\n"
        "           'sqlite:' + os.path.join(d, 'a.db'), '--json'])\n"
        "heavy = [m for m in ('fastapi', 'uvicorn', 'starlette', 'prometheus_client', 'pydantic')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy, rc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "HEAVY [] 0" in out.stdout, out.stdout[-500:] + out.stderr[-2000:]


def test_serve_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    """`pipestate serve --help` documents the grace period and the admission limits."""
    assert main(["serve", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--grace-seconds", "--max-running", "--max-running-per-org", "--outbox"):
        assert flag in text


def test_a_bad_switch_interval_is_one_clear_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """$PIPESTATE_SWITCH_INTERVAL_MS that is not a positive number stops serve with exit 2."""
    store = f"sqlite:{tmp_path / 's.db'}"
    cases = (("fast", "PIPESTATE_SWITCH_INTERVAL_MS", "'fast'"), ("0", "switch_interval_ms", "0.0"))
    for raw, field, received in cases:
        monkeypatch.setenv("PIPESTATE_SWITCH_INTERVAL_MS", raw)
        assert main(["serve", "--store", store, "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert field in err
        assert f"(got {received})" in err


def test_serve_sets_the_switch_interval_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """switch_interval_ms sets this process's GIL switch interval before serving; None leaves it."""
    from pipestate.service import ServiceSettings
    from pipestate.service.server import GracefulServer, serve

    seen: list[float] = []
    # Record the interval at the moment uvicorn would start serving, instead of serving.
    monkeypatch.setattr(
        GracefulServer, "run", lambda self, sockets=None: seen.append(sys.getswitchinterval())
    )
    before = sys.getswitchinterval()
    try:
        serve(ServiceSettings(switch_interval_ms=0.5), port=0)
        sys.setswitchinterval(0.004)
        serve(ServiceSettings(), port=0)
    finally:
        sys.setswitchinterval(before)
    assert seen == [pytest.approx(0.0005), pytest.approx(0.004)]
    monkeypatch.setenv("PIPESTATE_SWITCH_INTERVAL_MS", "0.25")
    assert ServiceSettings.from_env().switch_interval_ms == 0.25
