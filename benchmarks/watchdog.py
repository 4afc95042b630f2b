"""Watchdog cost: one watcher cycle (orphan sweep + every alert rule) on a 1,000,000-row store,
and recovery latency end to end, from SIGKILL of a real `pipestate run` to its terminal row.

    .venv/bin/python benchmarks/watchdog.py            # 1M rows; latency with default settings
    .venv/bin/python benchmarks/watchdog.py --quick    # 100k rows; 0.2 s heartbeats

The store is benchmarks/persistence.py's realistic history (30 days of runs) plus 60,000 lease
rows (5,000 released runs) and 20 crashed runs whose leases died: the first cycle recovers
those 20, the next ones are the steady state a watcher pays every interval. With default
settings (15 s heartbeats, 4 missed, 15 s sweeps) the latency measurement takes about a minute.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from persistence.bootstrap import bootstrap  # noqa: E402
from persistence.stores.base import RUN_LEASES, STATE_TRANSITIONS  # noqa: E402
from persistence.stores.sqlite import SQLiteStore  # noqa: E402
from persistence.watch.leases import LeaseOwner, lease_row  # noqa: E402
from persistence.watch.rules import DEFAULT_CONFIG  # noqa: E402
from persistence.watch.watcher import Watcher  # noqa: E402
from statemachine.clock import ManualClock  # noqa: E402
from statemachine.records import TransitionRecord  # noqa: E402

# Read by benchmarks/run_all.py: (claim, figure, "<=" or ">=", target).
TARGETS = (("watchdog cycle (sweep + all alert rules) on 1M rows, s", "cycle_s", "<=", 1),)
SLOW_YAML = """\
pipeline_id: bench-slow
steps:
  - step_id: first
    processor: generic.noop
  - step_id: long
    processor: generic.slow_processor
    depends_on: [first]
    config: {sleep_seconds: 600}
"""


def _persistence_bench() -> ModuleType:
    """benchmarks/persistence.py, loaded by path: its name would clash with our package."""
    spec = importlib.util.spec_from_file_location("_bench_persistence", HERE / "persistence.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / 'persistence.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leases_and_orphans(store: SQLiteStore, end: dt.datetime) -> None:
    """5,000 released leases of 12 rows each, and 20 crashed runs with dead leases."""
    owner = LeaseOwner(host="bench", pid=1, owner_id="bench-owner")
    rows: list[dict[str, Any]] = []
    for run in range(5_000):
        start = end - dt.timedelta(minutes=run % 1440, seconds=run)
        for seq in range(12):
            event = "ACQUIRED" if seq == 0 else "RELEASED" if seq == 11 else "HEARTBEAT"
            rows.append(
                lease_row(
                    pipeline_logging_id=f"leased-{run}",
                    org_slug="acme",
                    pipeline_id="billing",
                    event=event,
                    owner=owner,
                    seq=seq,
                    at=start + dt.timedelta(seconds=15 * seq),
                    lease_ms=60_000,
                )
            )
    records = []
    for run in range(20):
        run_id = f"crashed-{run}"
        start = end - dt.timedelta(minutes=30)
        for step, (entity, kind, sid) in enumerate(
            [("billing", "PIPELINE", None), ("load", "STEP", f"{run_id}-s")]
        ):
            when = start + dt.timedelta(seconds=step)
            records.append(
                TransitionRecord(
                    transition_id=f"{run_id}-{step}",
                    org_slug="acme",
                    pipeline_logging_id=run_id,
                    step_logging_id=sid,
                    entity_type=kind,
                    entity_name=entity,
                    from_state="PENDING",
                    to_state="RUNNING",
                    transition_time=when,
                    transition_date=when.date(),
                )
            )
        rows.append(
            lease_row(
                pipeline_logging_id=run_id,
                org_slug="acme",
                pipeline_id="billing",
                event="HEARTBEAT",
                owner=owner,
                seq=1,
                at=start + dt.timedelta(minutes=5),
                lease_ms=60_000,
            )
        )
    for i in range(0, len(rows), 10_000):
        store.write_batch(RUN_LEASES, rows[i : i + 10_000])
    store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in records])


def bench_cycle(tmp: Path, count: int) -> dict[str, float]:
    """Seconds per watcher cycle (sweep + the four default rules) on `count` transition rows."""
    persistence = _persistence_bench()
    path = tmp / "watch.db"
    persistence.load_rows(path, count)
    end: dt.datetime = persistence.END
    store = SQLiteStore(path)
    _leases_and_orphans(store, end)
    watcher = Watcher(
        store, config=DEFAULT_CONFIG, clock=ManualClock(start=end), interval_seconds=1
    )
    watcher.notifier.channels = ()  # measure the store work, not log output
    first = watcher.cycle()
    steady = [watcher.cycle() for _ in range(3)]
    watcher.stop()
    store.close()
    if len(first.recovered) != 20 or any(r.errors for r in (first, *steady)):
        raise RuntimeError(f"unexpected cycle: {first.errors or len(first.recovered)}")
    return {
        "cycle_rows": float(count),
        "first_cycle_with_20_recoveries_s": first.seconds,
        "cycle_s": statistics.median(r.seconds for r in steady),
        "cycle_alerts_firing": float(len(steady[-1].firing)),
    }


def bench_latency(tmp: Path, quick: bool) -> dict[str, float]:
    """Seconds from SIGKILL of `pipestate run` mid-step to the pipeline's FAILED row."""
    heartbeat, missed, interval = (0.2, 4, 0.25) if quick else (15.0, 4, 15.0)
    db = tmp / "latency.db"
    (tmp / "slow.yml").write_text(SLOW_YAML)
    env = {
        **os.environ,
        "PIPESTATE_HEARTBEAT_SECONDS": str(heartbeat),
        "PIPESTATE_LEASE_MISSED_HEARTBEATS": str(missed),
        "METADATA_LOG_FLUSH_INTERVAL_SECONDS": "0.1",
    }
    cli = [sys.executable, "-m", "pipestate.cli"]
    url = f"sqlite:{db}"
    bootstrap(SQLiteStore(db))  # tables first, as `pipestate bootstrap` would
    quiet: dict[str, Any] = {"env": env, "cwd": ROOT, "stdout": subprocess.DEVNULL}
    quiet["stderr"] = subprocess.DEVNULL
    watch = subprocess.Popen([*cli, "watch", "--store", url, "--interval", str(interval)], **quiet)
    slow = str(tmp / "slow.yml")
    run = subprocess.Popen([*cli, "run", slow, "--org", "bench", "--store", url, "--json"], **quiet)
    store = SQLiteStore(db)
    sql = (
        "SELECT to_state, transition_time FROM {org_meta_state_transitions} "
        "WHERE entity_name = :name AND to_state = :state"
    )
    try:
        while not store.run_sql(sql, {"name": "long", "state": "RUNNING"}):
            time.sleep(0.05)  # polling another process's writes
        time.sleep(heartbeat / 2)  # kill mid-interval, not on a heartbeat
        run.send_signal(signal.SIGKILL)
        killed = dt.datetime.now(dt.UTC)
        deadline = time.monotonic() + heartbeat * missed + interval * 3 + 30
        ended: list[dict[str, Any]] = []
        while not ended and time.monotonic() < deadline:
            ended = store.run_sql(sql, {"name": "bench-slow", "state": "FAILED"})
            time.sleep(0.05)
    finally:
        for proc in (run, watch):
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        store.close()
    if not ended:
        raise RuntimeError("the killed run was not recovered in time")
    latency = (dt.datetime.fromisoformat(ended[0]["transition_time"]) - killed).total_seconds()
    bound = heartbeat * missed + interval
    return {"recovery_latency_s": latency, "recovery_latency_over_bound": latency / bound}


def run(quick: bool) -> dict[str, float]:
    """Both parts; figures by name."""
    with tempfile.TemporaryDirectory(prefix="pipestate-watch-bench-") as tmp:
        figures = bench_cycle(Path(tmp), 100_000 if quick else 1_000_000)
        figures.update(bench_latency(Path(tmp), quick))
    return figures


def main(argv: list[str] | None = None) -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows, short lease settings")
    args = parser.parse_args(argv)
    for key, value in run(args.quick).items():
        print(f"{key:<36} {value:>12,.3f}")


if __name__ == "__main__":
    main()
