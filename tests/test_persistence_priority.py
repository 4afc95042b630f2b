"""run_in_background: a helper process drops to SCHED_IDLE (else nice 19), its later threads too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PROBE = """
import json, os, threading
from persistence._priority import run_in_background
applied = run_in_background()
seen = {}
def worker():
    seen["policy"] = os.sched_getscheduler(0)
thread = threading.Thread(target=worker)
thread.start()
thread.join()
print(json.dumps({"applied": applied, "main": os.sched_getscheduler(0),
                  "thread": seen["policy"], "nice": os.nice(0)}))
"""


def _probe() -> dict[str, int | str]:
    """What run_in_background did in a fresh interpreter (never lower the test process)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, int | str] = json.loads(done.stdout)
    return result


class TestRunInBackground:
    """The helper's priority: SCHED_IDLE where Linux has it, nice 19 either way."""

    @pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux-only")
    def test_idle_policy_for_the_process_and_threads_it_starts(self) -> None:
        """The calling thread and a thread started afterwards are both SCHED_IDLE."""
        result = _probe()
        assert result["applied"] == "idle"
        assert result["main"] == result["thread"] == os.SCHED_IDLE

    def test_lowest_niceness_as_the_fallback(self) -> None:
        """Whatever the policy, the helper also ends at nice 19 (what counts without SCHED_IDLE)."""
        assert _probe()["nice"] == 19
