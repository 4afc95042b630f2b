"""Big pipelines and a fast start: per-step cost from 100 to 10,000 steps, and cold-start CPU.

Chain (each step depends on the one before) and fan-out (one root, every other step depends on
it) through the CLI as a whole process and through run_pipeline in-process with the CLI's logger
settings (SQLite, derived run rows on). Linear cost means the per-step figure at 10,000 steps is
close to the one at 100: the ratio is reported (target <= 1.5). Cold start is the CPU time (user +
sys) of whole `pipestate run` / `validate` / `query` processes on a 1-step pipeline, next to the
bare interpreter's.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, benchmarks/ is sys.path[0] and benchmarks/executor.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))
SIZES = (100, 1_000, 10_000)
# Collected by run_all.py: (claim, figure, "<=" or ">=", target) — issue 20's targets.
TARGETS = (
    ("Cold start: `pipestate run`, 1-step pipeline, CPU s", "cold_start_run_cpu_s", "<=", 0.15),
    (
        "Linear cost: run_pipeline chain, per-step 10,000 / 100",
        "scale_lib_chain_ratio_10000_over_100",
        "<=",
        1.5,
    ),
    (
        "Linear cost: run_pipeline fan-out, per-step 10,000 / 100",
        "scale_lib_fanout_ratio_10000_over_100",
        "<=",
        1.5,
    ),
)
QUICK_SIZES = (100, 1_000)


def pipeline_yaml(kind: str, steps: int) -> str:
    """A no-op pipeline of `steps` steps shaped as a chain or a fan-out."""
    lines = [f"pipeline_id: {kind}-{steps}", "timeout_minutes: 60", "steps:"]
    for i in range(steps):
        lines += [f"  - step_id: s{i}", "    processor: generic.noop"]
        if i and kind == "chain":
            lines.append(f"    depends_on: [s{i - 1}]")
        elif i and kind == "fanout":
            lines.append("    depends_on: [s0]")
    return "\n".join(lines) + "\n"


def _cli() -> list[str]:
    exe = shutil.which("pipestate", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "pipestate.cli"]


def _child_env() -> dict[str, str]:
    """The environment for measured children: bytecode caches written and read.

    With PYTHONDONTWRITEBYTECODE set (some shells and CI images set it) an editable install
    never caches its own modules' bytecode, and every run compiles ~80 modules again (about
    90 ms of CPU): a cost no installed copy pays. The measured figure is the start-up a user
    sees from the second run on, so that variable is dropped and each command runs once before
    it is measured.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _child_cpu(command: list[str]) -> tuple[float, float]:
    """Run `command`; return (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_child_env()
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


async def _in_process(path: Path, db: Path) -> float:
    from executor.runner import run_pipeline
    from persistence.logger import MetadataLogger
    from persistence.stores.sqlite import SQLiteStore

    store = SQLiteStore(db)
    try:
        started = time.perf_counter()
        async with MetadataLogger(store, derive_run_rows=True) as logger:
            result = await run_pipeline(path, org_slug="bench", logger=logger)
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    if result.state != "COMPLETED":
        raise RuntimeError(f"{path.name}: {result.state}")
    return elapsed


def per_step_costs(quick: bool) -> dict[str, float]:
    """Per-step milliseconds for each shape and size, through the CLI and in-process.

    The CLI figure is marginal: the wall time of a 1-step run (process start, imports, store
    set-up) is subtracted before dividing, so the ratio measures how the per-step work scales.
    """
    sizes = QUICK_SIZES if quick else SIZES
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one.yml"
        one.write_text(pipeline_yaml("chain", 1), encoding="utf-8")
        asyncio.run(_in_process(one, Path(tmp) / "warm.db"))  # imports happen here, not below
        base = statistics.median(
            _child_cpu([*_cli(), "run", str(one), "--org", "b", "--store", f"sqlite:{tmp}/w.db"])[0]
            for _ in range(3)
        )
        out["scale_cli_one_step_wall_s"] = base
        for kind in ("chain", "fanout"):
            for steps in sizes:
                path = Path(tmp) / f"{kind}-{steps}.yml"
                path.write_text(pipeline_yaml(kind, steps), encoding="utf-8")
                db = Path(tmp) / f"{kind}-{steps}-cli.db"
                wall, _ = _child_cpu(
                    [*_cli(), "run", str(path), "--org", "bench", "--store", f"sqlite:{db}"]
                )
                out[f"scale_cli_{kind}_{steps}_ms_per_step"] = 1000 * max(wall - base, 0) / steps
                elapsed = asyncio.run(_in_process(path, Path(tmp) / f"{kind}-{steps}-lib.db"))
                out[f"scale_lib_{kind}_{steps}_ms_per_step"] = 1000 * elapsed / steps
        big = sizes[-1]
        # The CLI's marginal cost at 100 steps is within the noise of process start-up, so its
        # ratio compares with the next size up; in-process compares with 100 as the issue asks.
        for way, small in (("cli", sizes[1] if len(sizes) > 2 else sizes[0]), ("lib", sizes[0])):
            for kind in ("chain", "fanout"):
                ratio = out[f"scale_{way}_{kind}_{big}_ms_per_step"]
                ratio /= max(out[f"scale_{way}_{kind}_{small}_ms_per_step"], 1e-9)
                out[f"scale_{way}_{kind}_ratio_{big}_over_{small}"] = ratio
    return out


def cold_start(quick: bool) -> dict[str, float]:
    """Median CPU seconds of whole processes: bare python, pipestate run / validate / query."""
    repeats = 3 if quick else 7
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one.yml"
        one.write_text(pipeline_yaml("chain", 1), encoding="utf-8")
        store = f"sqlite:{tmp}/cold.db"
        subprocess.run([*_cli(), "bootstrap", "--store", store], cwd=ROOT, capture_output=True)
        commands = {
            "python": [sys.executable, "-c", "pass"],
            "run": [*_cli(), "run", str(one), "--org", "bench", "--store", store],
            "validate": [*_cli(), "validate", str(one)],
            "query": [*_cli(), "query", "failures", "--store", store],
            "help": [*_cli(), "--help"],
        }
        for name, command in commands.items():
            _child_cpu(command)  # warm-up: writes bytecode caches, as any first run does
            cpu = statistics.median(_child_cpu(command)[1] for _ in range(repeats))
            out[f"cold_start_{name}_cpu_s"] = cpu
    out["cold_start_run_over_python"] = out["cold_start_run_cpu_s"] / out["cold_start_python_cpu_s"]
    return out


def run(quick: bool = False) -> dict[str, float]:
    """The benchmark entry point used by run_all.py."""
    return {**per_step_costs(quick), **cold_start(quick)}


if __name__ == "__main__":
    for key, value in run(quick="--quick" in sys.argv).items():
        print(f"{key}: {value:.4f}")
