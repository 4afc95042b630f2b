"""Loss window on SIGKILL: a real `pipestate run` killed mid-burst, on SQLite and the outbox.

Run: .venv/bin/python benchmarks/loss_window.py [--quick]

Each kill starts `pipestate run` on a 6,000-step no-op chain (tests/processes.py; through
tests/crash_driver.py, which enters as the installed script does and taps MetadataLogger.emit
into a side file with a monotonic timestamp per transition), waits until it has emitted a random
200-1,500 transitions and 100 ms have passed since the first, and sends SIGKILL while the burst
goes on. Then it counts the transitions the side file lists that are not stored: in the SQLite
file, or in the outbox file (`bigquery:` store whose endpoint is a closed 127.0.0.1 port, so
nothing ships and every row that reached the outbox stays there). Seed default settings.

Figures per store: kills, lost rows (max per kill), the oldest lost row's age at the kill (ms,
max over kills), rows lost that were emitted more than 50 ms before the kill (sum; target 0),
and the longest cyclic collection of the pipeline process during the burst (thread CPU, ms, max
over kills; load-independent): the event loop stands still meanwhile, with the rows it queued
last still in memory (docs/reliability.md, "Collection pauses").
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is benchmarks/: put the repository root first (tests.processes).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
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


def _longest_collection_ms(side: Path, killed_at: int) -> float:
    """The longest collection (thread CPU, ms) the driver saw from the first emit to the kill."""
    emitted = [line.split() for line in side.read_text().splitlines()]
    first = min((int(e[1]) for e in emitted if len(e) == 2), default=killed_at)
    gc_file = side.with_name(side.name + ".gc")
    lines = gc_file.read_text().splitlines() if gc_file.exists() else []
    pauses = [line.split() for line in lines]
    return max(
        (int(p[2]) / 1e6 for p in pauses if len(p) == 3 and first <= int(p[1]) < killed_at),
        default=0.0,
    )


def kill_once(
    store_args: list[str], env: dict[str, str], side: Path, ready: int, config_dir: Path
) -> int:
    """Run the driver until `ready` transitions, SIGKILL it; return the kill's monotonic ns.

    The kill is the crash tests' own (tests/processes.py): it reads to end-of-file, i.e. until
    the writer process has committed what was in its pipe and exited, and checks the run died
    by SIGKILL mid-burst.
    """
    from tests.processes import kill_at_burst, write_burst_chain

    pipeline = write_burst_chain(config_dir)
    cli = ["run", pipeline, "--org", "bench", "--config-dir", str(config_dir), "--json"]
    # The burst outlasts the window: some rows are old enough to count.
    return kill_at_burst(side, ready, cli + store_args, env, min_ms=2 * WINDOW_MS)


def measure(kind: str, kills: int, tmp: Path) -> dict[str, float]:
    """Kill `kills` runs of one store kind; return its figures."""
    rng = random.Random(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_LOG_")}
    env["PIPESTATE_BQ_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    worst_lost, oldest_ms, late, longest_gc_ms = 0, 0.0, 0, 0.0
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
        longest_gc_ms = max(longest_gc_ms, _longest_collection_ms(side, killed_at))
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
        f"{kind}_longest_collection_ms": longest_gc_ms,
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
