"""Dashboard on a 1,000,000-row SQLite store: overview server time, Chromium render, report size.

    .venv/bin/python benchmarks/dashboard.py            # 1,000,000 rows over 30 days
    .venv/bin/python benchmarks/dashboard.py --quick    # 100,000 rows
    .venv/bin/python benchmarks/dashboard.py --db PATH  # reuse (or create) the 1M-row file

Server time is what the /ui/overview route does (five SQL aggregations, four figures, the
template), the median of 3 after a warm-up, plus the queries alone. Load-to-rendered is measured
in Debian's headless Chromium against the real app (uvicorn on 127.0.0.1): from navigation start
to the moment every Plotly chart has drawn (`window.pipestateRenderedAt`), median of 3 warm loads
(plotly.js cached, as for a returning user) and the first, cold load; next to it, the CPU time
all of Chromium's processes spent on a load (from /proc), which on a shared machine separates
the page's own cost from time spent waiting for a core. The report is the file
`pipestate report` writes for the same org. Without Chromium the browser figure is left out with
one line saying so.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this directory is sys.path[0]; benchmarks/transitions.py and
# benchmarks/classifier.py would then shadow the real `transitions` and `classifier` packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from persistence import SQLiteStore  # noqa: E402
from pipestate.ui import render  # noqa: E402
from pipestate.ui.data import load_overview  # noqa: E402
from pipestate.ui.report import build_report  # noqa: E402

QUICK_ROWS = 100_000
FULL_ROWS = 1_000_000
REPEATS = 3


def _persistence_bench() -> ModuleType:
    """benchmarks/persistence.py, loaded by path: its name would clash with our package."""
    spec = importlib.util.spec_from_file_location("_bench_persistence", HERE / "persistence.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / 'persistence.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _median_seconds(fn: Any) -> tuple[float, float]:
    """Median wall and CPU seconds of REPEATS calls after one warm-up call.

    The CPU time is what the call costs this process; on a shared machine the wall time also
    holds the time spent waiting for a core, so both are reported.
    """
    fn()
    wall, cpu = [], []
    for _ in range(REPEATS):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - begin_cpu)
    return statistics.median(wall), statistics.median(cpu)


def _browser_ms(db: Path, tmp: Path, as_of: str) -> dict[str, float]:
    """Chromium's navigation-start-to-rendered time of /ui/overview, cold and warm."""
    from tests.ui_server import CHROMIUM, CHROMIUM_ARGS, KEYS, chromium_problem, run_ui_server

    problem = chromium_problem()
    if problem:
        print(f"dashboard: browser figure skipped: {problem} (run `make chromium`)")
        return {}
    from playwright.sync_api import sync_playwright

    url_key = next(iter(KEYS))
    profile = tmp / "chromium-profile"
    with run_ui_server(db, tmp) as server, sync_playwright() as playwright:
        # A persistent context so that our Chromium is the one whose --user-data-dir is `profile`
        # (its process tree is then ours to measure, whatever else runs on the machine).
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(f"{server.url}/ui/login")
            page.fill("#api_key", url_key)
            page.click("button[type=submit]")
            page.wait_for_url("**/ui/overview", wait_until="commit")
            samples, cpu = [], []
            for _ in range(REPEATS + 1):
                before = _tree_cpu_seconds(str(profile))
                page.goto(f"{server.url}/ui/overview?to={as_of}")
                page.wait_for_selector("body[data-rendered=true]", timeout=60_000)
                samples.append(float(page.evaluate("window.pipestateRenderedAt")))
                cpu.append((_tree_cpu_seconds(str(profile)) - before) * 1000)
        finally:
            context.close()
    return {
        "chromium_first_load_ms": samples[0],
        "chromium_load_to_render_ms": statistics.median(samples[1:]),
        "chromium_cpu_ms_per_load": statistics.median(cpu[1:]),
    }


def _tree_cpu_seconds(marker: str) -> float:
    """CPU seconds (user + system) used so far by the Chromium whose command line has `marker`,
    and by all its descendants (zygotes, renderers, GPU and network services)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    roots = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(proc.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])
        if marker.encode() in cmdline and b"--type=" not in cmdline:
            roots.append(pid)
    tree = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(ticks[pid] for pid in tree) / os.sysconf("SC_CLK_TCK")


def run(quick: bool, db_path: Path | None = None) -> dict[str, float]:
    """Figures by name: overview server seconds, browser milliseconds, report megabytes."""
    bench = _persistence_bench()
    count = QUICK_ROWS if quick else FULL_ROWS
    as_of = bench.END.date()
    with tempfile.TemporaryDirectory(prefix="pipestate-dash-bench-") as tmp_name:
        tmp = Path(tmp_name)
        db = db_path or tmp / "dashboard.db"
        figures: dict[str, float] = {"rows": float(count)}
        if not db.exists():
            begin = time.perf_counter()
            bench.load_rows(db, count)
            figures["load_s"] = time.perf_counter() - begin
        store = SQLiteStore(db)
        try:
            figures["overview_queries_s"], figures["overview_queries_cpu_s"] = _median_seconds(
                lambda: load_overview(store, "acme", days=7, as_of=as_of)
            )

            def page() -> str:
                data = load_overview(store, "acme", days=7, as_of=as_of)
                figs = render.overview_figures(data)
                p = render.page_for(served=True, org="acme", section="overview", figures=figs)
                return render.render_overview(data, p, None)

            figures["overview_server_s"], figures["overview_server_cpu_s"] = _median_seconds(page)
            report = build_report(store, "acme", as_of=as_of)
            figures["report_mb"] = len(report.encode("utf-8")) / 1_000_000
            figures["report_data_kb"] = (len(report) - len(render.plotly_js())) / 1000
            data = load_overview(store, "acme", days=7, as_of=as_of)
            figures["overview_window_failures"] = float(
                sum(r["failures"] for r in data.errors_over_time)
            )
        finally:
            store.close()
        figures.update(_browser_ms(db, tmp, as_of.isoformat()))
    return figures


def main(argv: list[str] | None = None) -> None:
    """Print the figures next to the issue's targets."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    parser.add_argument("--db", type=Path, help="SQLite file to reuse (made when missing)")
    args = parser.parse_args(argv)
    figures = run(args.quick, args.db)
    targets = {
        "overview_server_s": 1.0,
        "chromium_load_to_render_ms": 2000.0,
        "report_mb": 5.0,
    }
    for key, value in figures.items():
        note = ""
        if key in targets:
            note = f"  ({'ok' if value <= targets[key] else 'OVER'} vs {targets[key]:g})"
        print(f"{key:<28} {value:>14,.3f}{note}")


if __name__ == "__main__":
    main()
