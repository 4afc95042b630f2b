"""Pytest plugin: a local BigQuery REST emulator (local-bigquery) for the session's tests.

The emulator lives in .venv-bq (made by scripts/setup_bq_emulator.sh, which `make test` runs). It is
started bound to 127.0.0.1 on a free port with a temporary data directory, and DuckDB finds its
extensions under .venv-bq/duckdb_home (passed as HOME), so nothing is written to the user's home.
Without .venv-bq the BigQuery tests skip with one message, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "test"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


class BQEmulator(NamedTuple):
    """Where a running emulator answers: its REST endpoint (with scheme) and its project."""

    endpoint: str
    project: str


def emulator_client(emulator: BQEmulator) -> Any:
    """A plain google BigQuery client on the emulator, to inspect what a store did."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project=emulator.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": emulator.endpoint},
    )


def drop_dataset(emulator: BQEmulator, dataset: str) -> None:
    """Delete a dataset and its tables: the emulator's queries slow down as tables pile up."""
    client = emulator_client(emulator)
    try:
        client.delete_dataset(
            f"{emulator.project}.{dataset}", delete_contents=True, not_found_ok=True
        )
    finally:
        client.close()


def emulator_venv() -> Path:
    """Return the emulator's venv directory (PIPESTATE_BQ_VENV or .venv-bq at the repo root)."""
    return Path(os.environ.get("PIPESTATE_BQ_VENV", ROOT / ".venv-bq"))


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unavailable(reason: str) -> None:
    """Skip with one clear message, or fail in CI where the emulator must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"BigQuery emulator unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"BigQuery emulator unavailable: {reason} (run `make bq-emulator`)")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the emulator's whole process group, escalating to SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_SECONDS)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    """Poll the REST API until it answers; raise with the log's tail if it dies or hangs."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"emulator exited with code {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        # Readiness polling of a child process, not waiting on our own background work.
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"emulator not ready after {READY_TIMEOUT_SECONDS}s:\n{tail}")


@contextlib.contextmanager
def run_emulator(workdir: Path, venv: Path | None = None) -> Iterator[BQEmulator]:
    """Start an emulator on 127.0.0.1 with its data in workdir; always stop it on exit."""
    venv = venv or emulator_venv()
    exe = venv / "bin" / "local-bigquery"
    port = free_port()
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "emulator.log"
    # DuckDB looks for extensions in $HOME/.duckdb/extensions; the setup script put them here.
    env = {**os.environ, "HOME": str(venv / "duckdb_home")}
    argv = [
        str(exe),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        "0",
        "--project",
        PROJECT,
        "--data-dir",
        str(data_dir),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    # Belt and braces: a session killed past pytest's teardown still stops the server.
    stopper = functools.partial(_stop, proc)
    atexit.register(stopper)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_ready(proc, f"{endpoint}/bigquery/v2/projects/{PROJECT}/datasets", log_path)
        yield BQEmulator(endpoint, PROJECT)
    finally:
        _stop(proc)
        atexit.unregister(stopper)


def pytest_report_header(config: pytest.Config) -> str:
    """One line in pytest's header saying whether the BigQuery tests can run here."""
    venv = emulator_venv()
    if (venv / "bin" / "local-bigquery").exists():
        return f"bigquery emulator: local-bigquery in {venv}"
    outcome = "fail (CI=true)" if os.environ.get("CI") == "true" else "skip"
    return (
        f"bigquery emulator: not set up ({venv} missing; run `make bq-emulator`): tests {outcome}"
    )


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BQEmulator]:
    """A session-wide emulator: yields (endpoint, project) and stops it after the session."""
    venv = emulator_venv()
    if not (venv / "bin" / "local-bigquery").exists():
        _unavailable(f"{venv} has no local-bigquery")
    with run_emulator(tmp_path_factory.mktemp("bq-emulator"), venv) as emulator:
        yield emulator
