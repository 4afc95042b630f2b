"""Tests for statemachine._log: structlog loaded and configured only when something logs."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import sys
import persistence.logger, persistence.stores.sqlite, executor.runner
print("structlog" in sys.modules)
from statemachine._log import configure_when_used, lazy_logger
seen = []
configure_when_used(lambda structlog: seen.append(structlog.__name__))
print(seen)
lazy_logger("t").bind(x=1)
print(seen, "structlog" in sys.modules)
"""


def test_structlog_is_imported_and_configured_only_on_first_use() -> None:
    """The run path loads no structlog; the first log call loads it and applies the deferred
    configuration exactly once, before the logger is used."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["False", "[]", "['structlog'] True"]
