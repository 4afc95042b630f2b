"""IsolatedExporter: run an exporter in a child process, so its CPU never competes for our GIL.

The OpenLineage client and the OpenTelemetry SDK spend far more CPU per event than a
transition costs; in the pipeline's process that time is taken from the pipeline, whatever
thread does it. The parent's worker thread only packs each batch (a tuple of fields per
record), writes it to the child's stdin and waits (GIL released) for the child's
acknowledgement, which says how many records were delivered; ExportWorker's queue, drops and
drain work unchanged.

The child is a plain `python -m persistence._export_child` (not multiprocessing, which would
re-import the caller's __main__ script): it inherits the environment (OPENLINEAGE*, OTEL_*)
and working directory (openlineage.yml) of the moment it starts, runs at a lower priority, and
exits when its stdin closes, so it never outlives its parent.
"""

from __future__ import annotations

import contextlib
import operator
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Sequence
from typing import IO, Any

from persistence.fanout import ExportFailed
from statemachine.records import RECORD_FIELDS, TransitionRecord

PACKED_FIELDS = tuple(f for f in RECORD_FIELDS if f != "transition_date")
_pack_fields = operator.attrgetter(*PACKED_FIELDS)
_HEADER = struct.Struct("!I")
_START_TIMEOUT = 60.0


def write_frame(stream: IO[bytes], payload: Any) -> None:
    """Write one length-prefixed pickle."""
    data = pickle.dumps(payload, pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """Read one length-prefixed pickle; EOFError when the stream ended."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("stream closed")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("stream closed mid-frame")
    return pickle.loads(data)


def unpack(row: tuple[Any, ...]) -> TransitionRecord:
    """A TransitionRecord from its packed fields (transition_date is derived)."""
    fields = dict(zip(PACKED_FIELDS, row, strict=True))
    fields["transition_date"] = fields["transition_time"].date()
    return TransitionRecord(**fields)


class IsolatedExporter:
    """Exporter protocol; the real exporter runs in a child process started on first use."""

    def __init__(self, kind: str, *, service_name: str | None = None) -> None:
        self.name = kind
        self.kind = kind
        self.service_name = service_name
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        # -P: the working directory is not put first on sys.path (a user's own "persistence"
        # folder there must not shadow ours).
        command = [sys.executable, "-P", "-m", "persistence._export_child", self.kind]
        command.append(self.service_name or "")
        # Own session: a Ctrl-C meant for the pipeline does not kill the exporter mid-drain;
        # it still ends with us, as its stdin closes.
        env = dict(os.environ)
        # The child imports what we import, from where we import it (a source checkout too).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        assert process.stdout is not None
        try:
            status, detail = read_frame(process.stdout)
        except EOFError:
            status, detail = "error", f"exited with {process.wait(_START_TIMEOUT)}"
        if status != "ready":
            self._close(process, 1.0)
            raise ExportFailed(f"{self.kind} exporter could not start: {detail}", failed=0)
        return process

    def prepare(self) -> None:
        """Start the child now (from the worker thread), not at the first batch."""
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()

    def export(self, records: Sequence[TransitionRecord]) -> None:
        """Send the batch to the child and wait for its account of it."""
        process = self._process
        if process is None or process.poll() is not None:
            process = self._process = self._start()
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            write_frame(process.stdin, [_pack_fields(r) for r in records])
            _delivered, failed, error = read_frame(process.stdout)
        except (EOFError, OSError):
            self._process = None  # the child died: a new one starts with the next batch
            lost = len(records)
            raise ExportFailed(f"{self.kind} exporter process exited", failed=lost) from None
        if failed:
            raise ExportFailed(error or f"{failed} records not delivered", failed=failed)

    def shutdown(self, timeout: float) -> None:
        """Close the child's stdin (it shuts its exporter down and exits); kill it if it won't."""
        process, self._process = self._process, None
        if process is not None:
            self._close(process, timeout)

    @staticmethod
    def _close(process: subprocess.Popen[bytes], timeout: float) -> None:
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stdout is not None:
            process.stdout.close()
