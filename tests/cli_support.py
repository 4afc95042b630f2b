"""Processors for CLI tests run in a subprocess (loaded there with --import tests.cli_support)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from executor.processors import ProcessorContext, processor


@processor("tests.cli_ready")
async def ready_then_wait(context: ProcessorContext, config: Mapping[str, Any]) -> None:
    """Tell the test (through a FIFO) that the step runs, then wait until cancelled."""
    with open(config["fifo"], "w", encoding="utf-8") as fifo:  # noqa: ASYNC230 - a handshake
        fifo.write("ready\n")
    await asyncio.Event().wait()
