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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this directory is sys.path[0]; benchmarks/transitions.py and
# benchmarks/classifier.py would then shadow the real `transitions` and `classifier` packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
SKIP = {"run_all.py", "__init__.py"}


def _load(path: Path) -> Callable[[bool], dict[str, float]]:
    """Import one benchmark script and return its run(quick) function."""
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load benchmark {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run: Callable[[bool], dict[str, float]] = module.run
    return run


def import_time_seconds() -> dict[str, float]:
    """Wall time of `import executor.cli` in a fresh interpreter (python -X importtime total)."""
    samples = []
    for _ in range(5):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import executor.cli"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        total_us = 0
        for line in proc.stderr.splitlines():
            parts = line.split("|")
            # Top-level imports have no leading spaces in the package column.
            if len(parts) == 3 and parts[2].startswith(" ") and not parts[2].startswith("  "):
                try:
                    total_us += int(parts[1].strip())
                except ValueError:
                    continue
        samples.append(total_us / 1e6)
    return {"import_time_s": statistics.median(samples)}


def demo_peak_rss_mb() -> dict[str, float]:
    """Peak RSS of `pipestate run` on the success demo pipeline, from the child's rusage."""
    import resource

    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "executor.cli",
                "run",
                "test/success/test_success",
                "--org",
                "bench",
                "--store",
                f"sqlite:{tmp}/bench.db",
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"pipestate_run_peak_rss_mb": max(before, after) / 1024, "pipestate_run_wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    """Run all benchmarks with repeats; write benchmarks/results.json and docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller workloads, one repeat")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats

    suites: dict[str, Callable[[bool], dict[str, float]]] = {}
    for path in sorted(HERE.glob("*.py")):
        if path.name not in SKIP:
            suites[path.stem] = _load(path)
    suites["import"] = lambda quick: import_time_seconds()
    suites["cli"] = lambda quick: demo_peak_rss_mb()

    results: dict[str, dict[str, dict[str, float]]] = {}
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
    out: dict[str, Any] = {"machine": machine, "results": results}
    (HERE / "results.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    (ROOT / "docs" / "performance.md").write_text(render_markdown(out))
    print((ROOT / "docs" / "performance.md").read_text())
    return 0


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
