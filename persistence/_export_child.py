"""The exporter child process: `python -m persistence._export_child KIND [SERVICE_NAME]`.

Reads length-prefixed batches of packed records on stdin, exports them, and answers each with
(delivered, failed, error); exits when stdin closes, after shutting its exporter down.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, Any

CHILD_NICENESS = 10


def build(kind: str, service_name: str | None) -> Any:
    """The exporter named `kind`, configured by this process's environment."""
    if kind == "openlineage":
        from persistence.exporters.openlineage import OpenLineageExporter

        return OpenLineageExporter()
    if kind == "otel":
        from persistence.exporters.otel import OTelExporter

        return OTelExporter(service_name=service_name)
    raise ValueError(f"exporter kind must be 'openlineage' or 'otel' (got {kind!r})")


def serve(exporter: Any, source: IO[bytes], sink: IO[bytes]) -> None:
    """Answer batches until the parent closes our stdin."""
    from persistence._export_process import read_frame, unpack, write_frame

    while True:
        try:
            rows = read_frame(source)
        except EOFError:
            return
        records = [unpack(row) for row in rows]
        try:
            exporter.export(records)
        except Exception as error:
            failed = getattr(error, "failed", len(records))
            detail = f"{type(error).__name__}: {error}"
            write_frame(sink, (len(records) - failed, failed, detail))
        else:
            write_frame(sink, (len(records), 0, ""))


def main(argv: list[str]) -> int:
    """Build the exporter, say ready, serve batches until stdin closes."""
    from persistence._export_process import write_frame

    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)  # best-effort telemetry: the pipeline gets the CPU first
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames may reach the parent's pipe
    kind, service_name = argv[0], (argv[1] if len(argv) > 1 and argv[1] else None)
    try:
        exporter = build(kind, service_name)
    except Exception as error:
        write_frame(sink, ("error", f"{type(error).__name__}: {error}"))
        return 1
    write_frame(sink, ("ready", ""))
    try:
        serve(exporter, source, sink)
    except (BrokenPipeError, ConnectionError):
        pass  # the parent went away without waiting for our answer
    finally:
        exporter.shutdown(5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
