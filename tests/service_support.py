"""Real `pipestate serve` processes for the service tests: start, wait until alive, stop.

Each server is a subprocess on 127.0.0.1 and a free port, with its own log file; stopping sends
SIGTERM (the graceful drain) and escalates to SIGKILL only if it hangs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bq_emulator import free_port

ROOT = Path(__file__).resolve().parent.parent
ROOT_KEY = "test-root-key-0123456789abcdef"
START_TIMEOUT = 60.0

# The seed's success call runs gcp/cost/billing; here it is a no-op pipeline with the seed's
# `date` parameter declared, so the parameter checks run too.
BILLING_YML = """\
pipeline_id: billing
timeout_minutes: 1
params:
  date: {type: date, required: true}
steps:
  - step_id: extract_billing
    processor: generic.noop
    config: {rows_processed: 10}
  - step_id: transform_costs
    processor: generic.noop
    depends_on: [extract_billing]
  - step_id: load_costs
    processor: generic.noop
    depends_on: [transform_costs]
"""

SLOW_YML = """\
pipeline_id: slow
timeout_minutes: 10
steps:
  - step_id: first
    processor: generic.noop
  - step_id: wait
    processor: generic.slow_processor
    depends_on: [first]
    config: {sleep_seconds: %s}
"""

NOOP10_YML = "pipeline_id: noop10\ntimeout_minutes: 5\nsteps:\n" + "".join(
    f"  - {{step_id: s{i}, processor: generic.noop}}\n" for i in range(10)
)


def make_config_dir(base: Path) -> Path:
    """A config dir with the repo's test pipelines plus billing, slow and noop10 pipelines."""
    root = base / "configs"
    shutil.copytree(ROOT / "configs" / "test", root / "test")
    files = {
        "gcp/cost/billing.yml": BILLING_YML,
        "test/slow/slow.yml": SLOW_YML % 60,
        "test/slow/short.yml": SLOW_YML % 0.3,
        "test/bench/noop10.yml": NOOP10_YML,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class Server:
    """A running `pipestate serve` subprocess."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on this server."""
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Signal the server and wait for it to exit; return its exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return int(self.proc.returncode)

    def wait_alive(self) -> None:
        """Return once /healthz answers (raise with the log if the server died)."""
        _wait_alive(self.proc, self.url, self.log)

    def log_text(self) -> str:
        """What the server printed."""
        return self.log.read_text(errors="replace")


def _wait_alive(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        # Readiness polling of a child process, not waiting on our own background work.
        time.sleep(0.05)
    raise RuntimeError(f"server not alive after {START_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def start_server(
    workdir: Path,
    *,
    store: str,
    config_dir: Path,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Server:
    """Start `pipestate serve` on 127.0.0.1 and a free port (call wait_alive() next)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / f"server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "pipestate.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--store",
        store,
        "--config-dir",
        str(config_dir),
        *args,
    ]
    environ = {**os.environ, "CA_ROOT_API_KEY": ROOT_KEY, **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(proc, url, log)


@contextlib.contextmanager
def run_server(
    workdir: Path,
    *,
    store: str,
    config_dir: Path,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start `pipestate serve` on 127.0.0.1 and a free port; always stop it on exit."""
    with run_servers(workdir, [args], store=store, config_dir=config_dir, env=env) as servers:
        yield servers[0]


@contextlib.contextmanager
def run_servers(
    workdir: Path,
    args: Sequence[Sequence[str]],
    *,
    store: str,
    config_dir: Path,
    env: dict[str, str] | None = None,
) -> Iterator[list[Server]]:
    """Start one server per args list side by side; always stop them all on exit."""
    servers: list[Server] = []
    try:
        for extra in args:
            servers.append(
                start_server(workdir, store=store, config_dir=config_dir, args=extra, env=env)
            )
        for server in servers:
            server.wait_alive()
        yield servers
    finally:
        for server in servers:
            server.stop()


def root_headers() -> dict[str, str]:
    """Headers carrying the root key."""
    return {"X-CA-Root-Key": ROOT_KEY}


def create_key(server: Server, org: str) -> dict[str, Any]:
    """Create an org key through the root API; return the response body (with api_key)."""
    with server.client() as client:
        response = client.post(
            "/api/v1/admin/keys", json={"org_slug": org, "name": "tests"}, headers=root_headers()
        )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def sqlite_rows(path: Path, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of a query on a SQLite store file (read-only connection)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


@pytest.fixture(scope="session")
def service_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared server's directory: configs, store (audit.db), logs."""
    return tmp_path_factory.mktemp("service")


def run_limited_server(workdir: Path) -> contextlib.AbstractContextManager[Server]:
    """A server on workdir's audit.db and test configs: process limit 4, per-org limit 2."""
    return run_server(
        workdir,
        store=f"sqlite:{workdir / 'audit.db'}",
        config_dir=make_config_dir(workdir),
        args=["--max-running", "4", "--max-running-per-org", "2", "--grace-seconds", "5"],
    )


@pytest.fixture(scope="session")
def service_server(service_workdir: Path) -> Iterator[Server]:
    """One server shared by the API and security tests: process limit 4, per-org limit 2."""
    with run_limited_server(service_workdir) as server:
        yield server
