"""`make bench`: run every benchmark, repeat it, and write results.json and docs/performance.md."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this directory is sys.path[0]; benchmarks/transitions.py and
# benchmarks/classifier.py would then shadow the real `transitions` and `classifier` packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
SKIP = {"run_all.py", "__init__.py", "profile_write_path.py"}  # the profile is run by hand


Target = tuple[str, str, str, str, float]  # (claim, suite, figure, "<=" or ">=", target)


def _load(path: Path) -> tuple[Callable[[bool], dict[str, float]], list[Target]]:
    """Import one benchmark script: its run(quick) function and the targets it declares.

    Adding a benchmark is adding a file: benchmarks/<name>.py with run(quick) -> figures and,
    optionally, TARGETS = ((claim, figure, "<=" or ">=", target), ...) for its own figures.
    """
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load benchmark {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run: Callable[[bool], dict[str, float]] = module.run
    declared = getattr(module, "TARGETS", ())
    targets = [(claim, path.stem, figure, op, float(t)) for claim, figure, op, t in declared]
    return run, targets


def _import_seconds(statement: str) -> float:
    """Median total of top-level imports for `statement` in fresh interpreters (-X importtime)."""
    samples = []
    for _ in range(5):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        total_us = 0
        for line in proc.stderr.splitlines():
            parts = line.split("|")
            # Top-level imports have exactly one space before the package name.
            if len(parts) == 3 and parts[2].startswith(" ") and not parts[2].startswith("  "):
                try:
                    total_us += int(parts[1].strip())
                except ValueError:
                    continue
        samples.append(total_us / 1e6)
    return statistics.median(samples)


def import_time_seconds() -> dict[str, float]:
    """Import time of the CLI entry point and of everything `pipestate run` loads."""
    return {
        "import_time_cli_s": _import_seconds("import pipestate.cli"),
        "import_time_run_path_s": _import_seconds(
            "import pipestate.cli, executor.runner, persistence.logger, persistence.stores.sqlite"
        ),
    }


# A fresh intermediate process whose only child is the CLI, so RUSAGE_CHILDREN is that child's.
_RSS_PROBE = """
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run(sys.argv[1:], capture_output=True, check=False)
wall = time.perf_counter() - started
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, wall)
"""


def demo_peak_rss_mb() -> dict[str, float]:
    """Peak RSS and wall time of `pipestate run` on the success demo pipeline."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "pipestate.cli",
            "run",
            "test/success/test_success",
            "--org",
            "bench",
            "--store",
            f"sqlite:{tmp}/bench.db",
            "--json",
        ]
        probe = subprocess.run(
            [sys.executable, "-c", _RSS_PROBE, *command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    max_rss_kb, wall = probe.stdout.split()
    return {
        "pipestate_run_peak_rss_mb": int(max_rss_kb) / 1024,
        "pipestate_run_wall_s": float(wall),
    }


def _all_targets() -> list[Target]:
    """run_all's own targets plus those every benchmark module declares."""
    targets = list(TARGETS)
    for path in sorted(HERE.glob("*.py")):
        if path.name not in SKIP:
            targets += _load(path)[1]
    return targets


def main(argv: list[str] | None = None) -> int:
    """Run all benchmarks with repeats; write benchmarks/results.json and docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller workloads, one repeat")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite docs/performance.md from results.json"
    )
    parser.add_argument(
        "--only",
        help="comma-separated suites to rerun; the others keep their figures in results.json",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        saved: dict[str, Any] = json.loads((HERE / "results.json").read_text())
        saved["targets"] = _all_targets()
        (ROOT / "docs" / "performance.md").write_text(render_markdown(saved))
        return 0
    repeats = 1 if args.quick else args.repeats

    suites: dict[str, Callable[[bool], dict[str, float]]] = {}
    targets = list(TARGETS)
    for path in sorted(HERE.glob("*.py")):
        if path.name not in SKIP:
            suites[path.stem], declared = _load(path)
            targets += declared
    suites["import"] = lambda quick: import_time_seconds()
    suites["cli"] = lambda quick: demo_peak_rss_mb()

    results: dict[str, dict[str, dict[str, float]]] = {}
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(suites)
        if unknown:
            parser.error(f"unknown suite(s) {sorted(unknown)}; known: {sorted(suites)}")
        results = json.loads((HERE / "results.json").read_text())["results"]
        suites = {name: run for name, run in suites.items() if name in wanted}
    for name, run in suites.items():
        samples: dict[str, list[float]] = {}
        for _ in range(repeats):
            print(f"[bench] {name} ...", flush=True)
            try:
                figures = run(args.quick)
            except Exception as exc:  # one broken suite must not hide the others
                print(f"[bench] {name} failed: {exc!r}", flush=True)
                figures = {}
            for key, value in figures.items():
                samples.setdefault(key, []).append(float(value))
        results[name] = {
            key: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}
            for key, v in samples.items()
        }

    machine = {
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "repeats": repeats,
    }
    out: dict[str, Any] = {"machine": machine, "results": results, "targets": targets}
    (HERE / "results.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    (ROOT / "docs" / "performance.md").write_text(render_markdown(out))
    print((ROOT / "docs" / "performance.md").read_text())
    return 0


# Why a missed target is missed; kept next to the table so the page says it every time.
MISSED_NOTES = (
    "Where a target is missed, what limits it (issue 12, measured with",
    "benchmarks/profile_write_path.py, callgrind and /proc counters): with the CLI's derived rows",
    "on, a no-op step logs 2 transitions and 1 step row. Local stores are committed by a forked",
    "writer process (persistence/_writer_process.py): the event loop queues each record's wire",
    "tuple (~0.8 us per emit), marshals groups of them (~0.5 us per record; the items are let go",
    "once encoded) into a non-blocking pipe every ~1 ms itself, and reads the replies with",
    "add_reader: no thread hand-offs (each one waited for the",
    "GIL, up to the 5 ms switch interval). The child builds the insert parameters and the",
    "run/step rows straight from the frame's integers, with no datetime or record rebuilt",
    "(~102,000 instructions, ~13-15 us of CPU per transition, of which sqlite3's binding and",
    "SQLite's B-tree work for 7 indexes and the primary key are ~51,000) on the other core.",
    "In the 100-step chain the transitions go to the child 32 at a time while the steps run",
    "(data frames, persistence/_writer_stream.py), the child inserts them at once and commits",
    "when idle, and the end of the last run in flight sends the rest at once",
    "(persistence/_run_ends.py). chain_overhead_before_flush_pct and chain_flush_wait_ms split",
    "the overhead where the pipeline returns. While the steps run the pipeline process pays per",
    "chain ~0.2-0.3 ms for the 202 wire tuples, ~0.05-0.1 ms to queue them, ~0.26-0.4 ms for 6",
    "data frames (in place ~19 us of marshal and ~15 us for the write that wakes the child, each",
    "twice its micro-benchmark) and ~0.1-0.17 ms to end the group. From the run's end, flush()",
    "then waits for the child: it finishes the previous data frame (~0.12 ms), inserts the last",
    "one (~0.16 ms: ~10 transitions, the run's row and ~5 step rows in 5 statements), one COMMIT",
    "(~0.21-0.23 ms: 14-30 WAL pages of 8 KiB whatever the number of rows; appending to a new",
    "WAL costs ~7 us per page on ext4 against ~4 us overwriting a recycled one), writes the reply",
    "(~0.03 ms) and the loop reads it (~0.07 ms; twelfth session, timelines of both processes on",
    "one clock). With flush() meaning committed and queryable, this design reads 34-38 % here",
    "(p25 of 40 interleaved pairs per process, and this page): ~19-27 % while the steps run",
    "and ~11-14 % for that tail; 25 % needs flush() to",
    "return once the rows are in the writer's pipe (safe from the pipeline process's crash, not",
    "yet queryable), a contract decision issue 12 is blocked on. A closed",
    "store parks its writer child for the next logger (persistence/_writer_pool.py): no fork",
    "and its ~250 copy-on-write faults per chain after the first, and the child compiles its",
    "INSERTs when a store opens, not in the chain's first commits. The figures",
    "need a free second core: on a shared 2-core machine the child and the loop compete for CPU",
    "with everything else. emit -> SQLite throughput is the child's rate: bare executemany into",
    "this schema alone is ~7-9 us of CPU per row (~2-3 us of it the window index's inserts at",
    "random places: the benchmark spreads dates over 30 days; a rollup table kept by trigger",
    "instead cost more than it saved) and the child's whole CPU per row is ~8.2-9 us with 8 KiB",
    "pages (9-9.5 with 4 KiB; kernel time in the commits, the WAL writes and a checkpoint's",
    "fsync, varies 0.8-3.5 us per row between runs), so",
    "100,000/s needs the child's core free (e2e_default_writer_cpu_us_per_row is the child's",
    "CPU per row). The SIGKILL loss window",
    "no longer depends",
    "on the commit: groups are in the pipe within ~1 ms and the child commits them after the",
    "parent dies; what remains is how long the event loop itself waits for a CPU.",
    "",
    "HTTP submit p99 (issue 13) straddles its 20 ms target from run to run (18.9, 20.6 and",
    "22.3 ms in three runs of benchmarks/service.py on 2026-11-30): the p99 of ~190 probe",
    "samples is their second largest, and the probe's own /healthz, which does no work, had a",
    "p99 of 12-34 ms in the same runs. The tail is the server waiting for a core",
    "(api_waiting_for_core_pct ~11 % on these 2 cores) or for a collection",
    "(server_gc_pause_max_ms 8-18 ms), not the submit's own work (submit_p50_ms ~1 ms).",
)


# (claim, suite, figure, "<=" or ">=", target) — the targets the issues set, checked per run.
# Benchmarks declare their own targets too (TARGETS in the module; see _load).
TARGETS: tuple[Target, ...] = (
    (
        "classify_error, us per call (exception)",
        "classifier",
        "classify_error_us_per_call",
        "<=",
        10,
    ),
    (
        "classify_error, us per call (message only)",
        "classifier",
        "classify_error_message_only_us_per_call",
        "<=",
        10,
    ),
    ("full transition / bare transitions trigger", "transitions", "full_over_bare", "<=", 1.6),
    ("bytes per live StepRun", "transitions", "bytes_per_steprun", "<=", 2048),
    (
        "emit -> SQLite, transitions/s (defaults)",
        "persistence",
        "e2e_default_rows_per_s",
        ">=",
        1e5,
    ),
    ("seed query 'stuck' on 1M rows, s", "persistence", "query_stuck_s", "<=", 1),
    ("seed query 'failures' on 1M rows, s", "persistence", "query_failures_s", "<=", 1),
    ("seed query 'steps' on 1M rows, s", "persistence", "query_steps_s", "<=", 1),
    ("seed query 'retries' on 1M rows, s", "persistence", "query_retries_s", "<=", 1),
    ("seed query 'timeline' on 1M rows, s", "persistence", "query_timeline_s", "<=", 1),
    (
        "emit -> outbox overhead, us per row",
        "outbox",
        "emit_to_outbox_overhead_us_per_row",
        "<=",
        25,
    ),
    ("both exporters / logger alone, per transition", "exporters", "both_over_logger", "<=", 1.3),
    ("exhaustive exploration, 1 pipeline + 4 steps, s", "joint", "explore_4_steps_s", "<=", 60),
    ("pipestate verify on 1M SQLite rows, s", "joint", "verify_s", "<=", 10),
    (
        "import time, everything `pipestate run` loads, s",
        "import",
        "import_time_run_path_s",
        "<=",
        0.3,
    ),
    ("dashboard overview on 1M rows, server s", "dashboard", "overview_server_s", "<=", 1),
    (
        "dashboard overview, Chromium load-to-render ms",
        "dashboard",
        "chromium_load_to_render_ms",
        "<=",
        2000,
    ),
    ("static report for the 1M-row store, MB", "dashboard", "report_mb", "<=", 5),
)


def render_targets(
    results: dict[str, dict[str, dict[str, float]]], targets: Sequence[Target] = TARGETS
) -> list[str]:
    """The targets table: each claim, its median, the target and whether it was met."""
    lines = ["| claim | median | target | met |", "|---|---:|---:|---|"]
    for claim, suite, key, op, target in targets:
        figure = results.get(suite, {}).get(key)
        if figure is None:
            lines.append(f"| {claim} | not measured | {op} {target:g} | ? |")
            continue
        value = figure["median"]
        met = value <= target if op == "<=" else value >= target
        lines.append(f"| {claim} | {value:.4g} | {op} {target:g} | {'yes' if met else '**no**'} |")
    return lines


def render_markdown(out: dict[str, Any]) -> str:
    """Render the results as the markdown table of docs/performance.md."""
    m = out["machine"]
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (benchmarks/run_all.py); do not edit by hand.",
        "",
        f"Machine: {m['cores']} cores, Python {m['python']}, {m['platform']}; "
        f"{m['date']}; {m['repeats']} repeat(s) per figure.",
        "",
        "Ratios measured in the same run carry the claims; absolute times are context.",
        "",
        "## Targets",
        "",
        *render_targets(out["results"], out.get("targets", TARGETS)),
        "",
        *MISSED_NOTES,
        "",
        "## Every figure",
        "",
        "| suite | figure | median | min | max |",
        "|---|---|---:|---:|---:|",
    ]
    for suite, figures in out["results"].items():
        for key, s in figures.items():
            lines.append(
                f"| {suite} | {key} | {s['median']:.4g} | {s['min']:.4g} | {s['max']:.4g} |"
            )
    peers = HERE / "peers" / "results.md"
    if peers.exists():
        # `make bench-peers` is optional and slow; its last committed results are shown as is.
        lines += ["", *peers.read_text().splitlines()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
