"""The loss window on SIGKILL: a real `pipestate run` killed mid-burst keeps all but the last 50 ms.

Each run starts `pipestate run` (through tests/crash_driver.py, which only taps
MetadataLogger.emit into a side file) on a long no-op chain, waits until it has emitted a random
number of transitions, and kills it with SIGKILL while transitions are still flowing. What is
stored (in the SQLite file, or, for BigQuery, in the outbox file or already in BigQuery) must then
be a prefix of what was emitted (commits are atomic and in order: nothing older than a stored row
is lost), and nothing emitted more than GUARD_NS before the kill may be missing: the old design
held rows for up to 5 s or a full batch. The number lost, and how many of them were older than the
50 ms target, is printed for each run.

The 50 ms figure itself is a latency target, so it is asserted where timings belong: in
benchmarks/loss_window.py (`make bench`), measured on a machine not shared with other work. On a
2-core machine running other processes the event loop can wait for the CPU longer than 50 ms,
which says nothing about the write path (docs/reliability.md gives the figures).
"""

from __future__ import annotations

import os
import random
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bq_emulator import BQEmulator
from tests.outbox_support import outbox_ids
from tests.processes import kill_at_burst, write_burst_chain
from tests.test_persistence_outbox_bigquery import bootstrap_dataset, bq_transition_ids

RUNS = 10
WINDOW_NS = 50_000_000  # the target: rows emitted in the last 50 ms may be lost (printed here)
GUARD_NS = 1_000_000_000  # asserted: no row older than 1 s is lost, whatever the machine's load
SEED = 12


def read_side_file(path: Path) -> list[tuple[str, int]]:
    """(transition_id, monotonic ns) of every transition the child handed to its logger."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:  # a line cut by the kill was being written at the very end
            out.append((parts[0], int(parts[1])))
    return out


def kill_mid_burst(
    cli_args: list[str], side_file: Path, ready_after: int, env: dict[str, str]
) -> int:
    """Run the driver until it reports the burst, SIGKILL it; return the kill's monotonic ns."""
    # The burst must have run longer than the window, so some rows are old enough to check.
    return kill_at_burst(side_file, ready_after, cli_args, env, min_ms=2 * WINDOW_NS / 1e6)


def check_run(emitted: list[tuple[str, int]], stored: set[str], killed_at: int, label: str) -> None:
    """Assert the stored rows are a prefix of the emitted ones and none older than GUARD_NS is
    lost; print the number lost and how many of them missed the 50 ms target."""
    old_enough = [tid for tid, at in emitted if at < killed_at - WINDOW_NS]
    missing = [tid for tid in old_enough if tid not in stored]
    too_old = [tid for tid, at in emitted if at < killed_at - GUARD_NS and tid not in stored]
    kept = [tid in stored for tid, _ in emitted]
    lost = kept.count(False)
    print(
        f"{label}: emitted {len(emitted)}, stored {len(emitted) - lost}, lost {lost}, of them "
        f"emitted more than {WINDOW_NS // 1_000_000} ms before the kill: {len(missing)}"
    )
    assert old_enough, "nothing was emitted more than 50 ms before the kill"
    first_lost = kept.index(False) if lost else len(kept)
    assert not any(kept[first_lost:]), "a row was stored after an older one was lost"
    assert not too_old, f"{len(too_old)} rows emitted > 1 s before the kill were lost"


def run_many(
    tmp_path: Path,
    store_args: Callable[[int], list[str]],
    stored_ids: Callable[[int], set[str]],
    env: dict[str, str],
    label: str,
) -> None:
    """RUNS kills at random points of the burst, each checked on its own."""
    config_dir = tmp_path / "configs"
    pipeline = write_burst_chain(config_dir)
    rng = random.Random(SEED)
    for run in range(RUNS):
        side_file = tmp_path / f"emitted-{run}.txt"
        args = ["run", pipeline, "--org", "acme", "--config-dir", str(config_dir), "--json"]
        killed_at = kill_mid_burst(args + store_args(run), side_file, rng.randint(200, 1_500), env)
        check_run(read_side_file(side_file), stored_ids(run), killed_at, f"{label} run {run}")


def sqlite_ids(path: Path) -> set[str]:
    """Transition ids in a SQLite store file left by a killed process."""
    if not path.exists():
        return set()
    with sqlite3.connect(path, timeout=10) as conn:
        return {r[0] for r in conn.execute("SELECT transition_id FROM org_meta_state_transitions")}


@pytest.mark.slow
class TestKillMidBurst:
    """SIGKILL during a burst loses only a tail of the newest rows, none older than 1 s."""

    def test_sqlite_store(self, tmp_path: Path) -> None:
        """On SQLite (seed defaults), the file holds a prefix of the emitted transitions missing
        nothing older than 1 s, in each of 10 kills at random points of the burst."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_LOG_")}
        run_many(
            tmp_path,
            lambda run: ["--store", f"sqlite:{tmp_path / f'audit-{run}.db'}"],
            lambda run: sqlite_ids(tmp_path / f"audit-{run}.db"),
            env,
            "sqlite",
        )

    @pytest.mark.bigquery
    def test_bigquery_outbox(
        self, bq_emulator: BQEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Through the BigQuery outbox (seed defaults), the outbox plus BigQuery hold a prefix of
        the emitted transitions missing nothing older than 1 s, in each of 10 kills."""
        dataset = f"loss_window_{uuid.uuid4().hex[:8]}"
        url = f"bigquery:{bq_emulator.project}.{dataset}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_LOG_")}
        env["PIPESTATE_BQ_ENDPOINT"] = bq_emulator.endpoint
        monkeypatch.setenv("PIPESTATE_BQ_ENDPOINT", bq_emulator.endpoint)
        bootstrap_dataset(url)

        def outbox_path(run: int) -> Path:
            return tmp_path / f"outbox-{run}.db"

        def stored(run: int) -> set[str]:
            in_outbox = set(outbox_ids(outbox_path(run))) if outbox_path(run).exists() else set()
            shipped = bq_transition_ids(bq_emulator.endpoint, bq_emulator.project, dataset)
            return in_outbox | set(shipped)

        def store_args(run: int) -> list[str]:
            env["PIPESTATE_OUTBOX"] = str(outbox_path(run))
            return ["--store", url]

        run_many(tmp_path, store_args, stored, env, "outbox")
