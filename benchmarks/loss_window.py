"""Loss window on SIGKILL: a real `pipestate run` killed mid-burst, on SQLite and the outbox.

Run: .venv/bin/python benchmarks/loss_window.py [--quick]

Each kill starts `pipestate run` on a 2,000-step no-op chain (through tests/crash_driver.py,
which taps MetadataLogger.emit into a side file with a monotonic timestamp per transition),
waits until it has emitted a random 200-1,500 transitions, and sends SIGKILL while the burst
goes on. Then it counts the transitions the side file lists that are not stored: in the SQLite
file, or in the outbox file (`bigquery:` store whose endpoint is a closed 127.0.0.1 port, so
nothing ships and every row that reached the outbox stays there). Seed default settings.

Figures per store: kills, lost rows (max per kill), the oldest lost row's age at the kill (ms,
max over kills) and rows lost that were emitted more than 50 ms before the kill (sum; target 0).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAIN_STEPS = 2_000
WINDOW_MS = 50.0
# Collected by run_all.py: (claim, figure, "<=" or ">=", target).
TARGETS = (
    (
        "SIGKILL mid-burst, rows lost older than 50 ms (SQLite, defaults)",
        "sqlite_lost_older_than_50ms",
        "<=",
        0,
    ),
    (
        "SIGKILL mid-burst, rows lost older than 50 ms (outbox, defaults)",
        "outbox_lost_older_than_50ms",
        "<=",
        0,
    ),
)


def write_chain(config_dir: Path) -> str:
    """A CHAIN_STEPS no-op chain in config_dir; returns its pipeline name."""
    lines = ["pipeline_id: crash-burst", "timeout_minutes: 10", "steps:"]
    for i in range(CHAIN_STEPS):
        lines += [f"  - step_id: s{i:04d}", "    processor: generic.noop"]
        if i:
            lines.append(f"    depends_on: [s{i - 1:04d}]")
    folder = config_dir / "crash" / "loss"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "burst.yml").write_text("\n".join(lines) + "\n")
    return "crash/loss/burst"


def _closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stored(path: Path, sql: str) -> set[str]:
    if not path.exists():
        return set()
    try:
        with sqlite3.connect(path, timeout=10) as conn:
            return {row[0] for row in conn.execute(sql)}
    except sqlite3.OperationalError:  # killed before its first table existed
        return set()


def kill_once(
    store_args: list[str], env: dict[str, str], side: Path, ready: int, config_dir: Path
) -> int:
    """Run the driver until `ready` transitions, SIGKILL it; return the kill's monotonic ns."""
    pipeline = write_chain(config_dir)
    min_ms = str(2 * WINDOW_MS)  # the burst outlasts the window: some rows are old enough
    command = [sys.executable, "-m", "tests.crash_driver", str(side), str(ready), min_ms, "--"]
    command.append("run")
    command += [pipeline, "--org", "bench", "--config-dir", str(config_dir), "--json"]
    child = subprocess.Popen(
        command + store_args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    killed_at = time.monotonic_ns()
    os.kill(child.pid, signal.SIGKILL)
    # End-of-file comes once the writer process (it inherited stdout) has committed what was
    # in its pipe and exited: only then is the file what a restarted run would find.
    child.communicate(timeout=60)
    if line.strip() != "burst":
        raise RuntimeError(f"the run ended before the burst: {line!r}")
    return killed_at


def measure(kind: str, kills: int, tmp: Path) -> dict[str, float]:
    """Kill `kills` runs of one store kind; return its figures."""
    rng = random.Random(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_LOG_")}
    env["PIPESTATE_BQ_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    worst_lost, oldest_ms, late = 0, 0.0, 0
    for run in range(kills):
        side = tmp / f"{kind}-{run}.txt"
        db = tmp / f"{kind}-{run}.db"
        if kind == "sqlite":
            store_args = ["--store", f"sqlite:{db}"]
            sql = "SELECT transition_id FROM org_meta_state_transitions"
        else:
            env["PIPESTATE_OUTBOX"] = str(db)
            store_args = ["--store", "bigquery:bench-project.loss_window"]
            sql = "SELECT row_id FROM outbox"
        killed_at = kill_once(store_args, env, side, rng.randint(200, 1_500), tmp / "configs")
        stored = _stored(db, sql)
        emitted = [line.split() for line in side.read_text().splitlines()]
        lost = [(tid, int(at)) for tid, at in (e for e in emitted if len(e) == 2)]
        lost = [(tid, at) for tid, at in lost if tid not in stored]
        ages = [(killed_at - at) / 1e6 for _, at in lost]
        worst_lost = max(worst_lost, len(lost))
        oldest_ms = max([oldest_ms, *ages])
        late += sum(1 for age in ages if age > WINDOW_MS)
    return {
        f"{kind}_kills": float(kills),
        f"{kind}_max_rows_lost_per_kill": float(worst_lost),
        f"{kind}_oldest_lost_ms": oldest_ms,
        f"{kind}_lost_older_than_50ms": float(late),
    }


def run(quick: bool) -> dict[str, float]:
    """Both stores, 10 kills each (quick: 3)."""
    kills = 3 if quick else 10
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pipestate-loss-") as tmp:
        for kind in ("sqlite", "outbox"):
            figures.update(measure(kind, kills, Path(tmp)))
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 kills per store")
    args = parser.parse_args(argv)
    for name, value in run(args.quick).items():
        print(f"{name:<34} {value:>10,.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
