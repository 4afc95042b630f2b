"""The HTTP service under load: 1,000 runs of a 10-step no-op pipeline from 50 concurrent clients.

Run: .venv/bin/python benchmarks/service.py [--quick]

Figures (one local `pipestate serve` subprocess on 127.0.0.1, SQLite store, default settings
except --max-running-per-org 100 so that one org may use the whole process):
- submit_p50_ms / submit_p99_ms: latency of POST /api/v1/pipelines/run/... (202) seen by the
  clients; target p99 <= 20 ms on loopback;
- http_runs_per_s: runs submitted and finished per second (each client long-polls its runs with
  GET ...?wait=true after submitting);
- non_2xx / rejected_429: responses other than 2xx besides the intended 429s (target 0), and the
  429s (a client that gets one waits for one of its own runs to end, then retries);
- rows_lost: transitions expected minus stored after the server drained (target 0);
- inprocess_runs_per_s: the same runs through run_pipeline in one process, 50 at a time, on a
  MetadataLogger + SQLite store; http_over_inprocess: wall-time ratio (target <= 1.5).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import httpx  # noqa: E402

ROOT_KEY = "bench-root-key"
# The targets, collected by run_all.py: (claim, figure, "<=" or ">=", target).
TARGETS = (
    ("HTTP submit p99, ms (50 clients, loopback)", "submit_p99_ms", "<=", 20),
    ("HTTP wall / in-process wall, 1,000 runs", "http_over_inprocess", "<=", 1.5),
    ("HTTP non-2xx besides intended 429s", "non_2xx", "<=", 0),
    ("HTTP rows lost", "rows_lost", "<=", 0),
)
CLIENTS = 50
STEPS = 10
PIPELINE = "pipeline_id: noop10\ntimeout_minutes: 5\nsteps:\n" + "".join(
    f"  - {{step_id: s{i}, processor: generic.noop}}\n" for i in range(STEPS)
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [
        sys.executable, "-m", "pipestate.cli", "serve", "--port", str(port),
        "--store", f"sqlite:{tmp / 'http.db'}", "--config-dir", str(tmp / "configs"),
        "--max-running-per-org", "100", "--grace-seconds", "30",
    ]  # fmt: skip
    env = {**os.environ, "CA_ROOT_API_KEY": ROOT_KEY}
    proc = subprocess.Popen(
        command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)  # waiting for a child process to listen
    proc.kill()
    raise RuntimeError("server did not start")


async def _client(
    client: httpx.AsyncClient, key: str, jobs: asyncio.Queue[int], out: dict[str, Any]
) -> None:
    """Submit runs from the queue; on 429 wait for an own run to end, then retry."""
    headers = {"X-API-Key": key}
    mine: list[str] = []
    while True:
        try:
            jobs.get_nowait()
        except asyncio.QueueEmpty:
            break
        while True:
            started = time.perf_counter()
            response = await client.post(
                "/api/v1/pipelines/run/bench/test/bench/noop10", headers=headers
            )
            elapsed = time.perf_counter() - started
            if response.status_code == 202:
                out["latencies"].append(elapsed)
                mine.append(response.json()["pipeline_logging_id"])
                break
            if response.status_code == 429 and mine:
                out["rejected_429"] += 1
                await _finish(client, headers, mine.pop(0), out)
                continue
            out["non_2xx"] += 1
            break
    for run_id in mine:
        await _finish(client, headers, run_id, out)


async def _finish(
    client: httpx.AsyncClient, headers: dict[str, str], run_id: str, out: dict[str, Any]
) -> None:
    response = await client.get(f"/api/v1/runs/bench/{run_id}?wait=true", headers=headers)
    if response.status_code != 200 or response.json()["state"] != "COMPLETED":
        out["non_2xx"] += 1


async def _http_load(url: str, key: str, runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "non_2xx": 0, "rejected_429": 0}
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for i in range(runs):
        jobs.put_nowait(i)
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(_client(client, key, jobs, out) for _ in range(CLIENTS)))
        out["wall"] = time.perf_counter() - started
    return out


async def _inprocess(tmp: Path, runs: int) -> float:
    from executor.config import parse_pipeline_config
    from executor.runner import run_pipeline
    from persistence import MetadataLogger, SQLiteStore

    config = parse_pipeline_config(PIPELINE)
    store = SQLiteStore(tmp / "inproc.db")
    gate = asyncio.Semaphore(CLIENTS)

    async def one(logger: MetadataLogger) -> None:
        async with gate:
            await run_pipeline(config, org_slug="bench", logger=logger, store=store)

    try:
        async with MetadataLogger(store, derive_run_rows=True) as logger:
            started = time.perf_counter()
            await asyncio.gather(*(one(logger) for _ in range(runs)))
            await logger.flush()
            return time.perf_counter() - started
    finally:
        store.close()


def run(quick: bool = False) -> dict[str, float]:
    """Measure the HTTP path and the in-process path in the same run."""
    runs = 200 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "configs" / "test" / "bench").mkdir(parents=True)
        (tmp / "configs" / "test" / "bench" / "noop10.yml").write_text(PIPELINE)
        proc, url = _start(tmp)
        try:
            created = httpx.post(
                f"{url}/api/v1/admin/keys",
                json={"org_slug": "bench"},
                headers={"X-CA-Root-Key": ROOT_KEY},
            )
            key = created.json()["api_key"]
            load = asyncio.run(_http_load(url, key, runs))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        conn = sqlite3.connect(tmp / "http.db")
        stored = conn.execute("SELECT COUNT(*) FROM org_meta_state_transitions").fetchone()[0]
        conn.close()
        inproc_wall = asyncio.run(_inprocess(tmp, runs))
    latencies = sorted(load["latencies"])
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return {
        "submit_p50_ms": statistics.median(latencies) * 1000,
        "submit_p99_ms": p99 * 1000,
        "http_runs_per_s": runs / load["wall"],
        "non_2xx": float(load["non_2xx"]),
        "rejected_429": float(load["rejected_429"]),
        "rows_lost": float(runs * (STEPS + 1) * 2 - stored),
        "inprocess_runs_per_s": runs / inproc_wall,
        "http_over_inprocess": load["wall"] / inproc_wall,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=2))
