"""Child-process helpers shared by the crash and writer-process tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A burst chain must outlast the kill point (up to 1,500 rows and 100 ms in): 6,000 no-op steps
# take ~0.2 s at the executor's 0.036 ms per step (2,000 ended before 100 ms once it got faster).
BURST_CHAIN_STEPS = 6_000


def write_burst_chain(config_dir: Path) -> str:
    """Write a BURST_CHAIN_STEPS no-op chain under config_dir; return its pipeline name."""
    lines = ["pipeline_id: crash-burst", "timeout_minutes: 10", "steps:"]
    for i in range(BURST_CHAIN_STEPS):
        lines += [f"  - step_id: s{i:05d}", "    processor: generic.noop"]
        if i:
            lines.append(f"    depends_on: [s{i - 1:05d}]")
    folder = config_dir / "crash" / "loss"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "burst.yml").write_text("\n".join(lines) + "\n")
    return "crash/loss/burst"


def gone(pid: int) -> bool:
    """True once `pid` is no child of this process any more (exited and reaped)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def kill_at_burst(
    side_file: Path,
    ready_after: int,
    cli_args: list[str],
    env: dict[str, str],
    min_ms: float | None = None,
) -> int:
    """Run `pipestate` under tests/crash_driver.py until it prints "burst", SIGKILL it there
    and return the kill's monotonic ns; fails if the run ended before it could be killed."""
    driver = [sys.executable, "-m", "tests.crash_driver", str(side_file), str(ready_after)]
    if min_ms is not None:
        driver.append(str(min_ms))
    child = subprocess.Popen(
        [*driver, "--", *cli_args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    try:
        line = child.stdout.readline()  # blocks until the child has emitted ready_after rows
        killed_at = time.monotonic_ns()
        os.kill(child.pid, signal.SIGKILL)
        # Read to end-of-file: the store's writer process inherited this pipe and closes it
        # when it exits, after committing every group that was already in its own pipe.
        child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=60)
        child.stdout.close()
    assert line.strip() == "burst", f"the child ended before the burst: {line!r}"
    assert child.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return killed_at
