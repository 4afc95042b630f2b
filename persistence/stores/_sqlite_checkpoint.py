"""The writer child's WAL checkpointer: checkpoints off the commit path, in a thread of its own.

With wal_autocheckpoint on, the commit that crosses the threshold runs the checkpoint itself
(its fsyncs and page copies: 110-620 ms of one commit per 200,000 rows, with the parent's
groups piling up behind it). The writer child's connection turns it off (wal_autocheckpoint
= 0) and, after each commit, reads how many WAL frames are not yet copied back; past the
threshold it wakes this thread, whose own connection runs `PRAGMA wal_checkpoint(PASSIVE)`
(sqlite3 releases the GIL meanwhile, so the writer keeps committing). Bounded: past twice
the threshold (the thread behind, failing or never started) the writer checkpoints itself,
as autocheckpoint did.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import threading

# The wal-index (the "-shm" file, https://sqlite.org/walformat.html): the header's mxFrame
# (the last valid frame) at byte 16 and the checkpoint info's nBackfill (frames copied back
# into the database) at byte 96, native-endian u32s. A racy read is fine for a threshold.
_MX_FRAME = struct.Struct("=I")
_MX_FRAME_AT = 16
_BACKFILL_AT = 96
_READ = 100


class WalCheckpointer:
    """A thread with its own connection that runs PASSIVE checkpoints when the writer asks."""

    def __init__(self, path: str, threshold_frames: int, timeout_seconds: float) -> None:
        self.path = path
        self.threshold = max(1, threshold_frames)
        self.timeout_seconds = timeout_seconds
        self.checkpoints = 0  # completed by the thread
        self.writer_checkpoints = 0  # run by the writer itself (the 2x bound)
        self.checkpointed = threading.Condition()
        self._wake = threading.Event()
        self._stop = False
        self._shm_fd: int | None = None
        self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)
        self._thread.start()

    def pending_frames(self) -> int | None:
        """WAL frames not yet copied back into the database; None if the wal-index is unreadable."""
        try:
            if self._shm_fd is None:
                self._shm_fd = os.open(self.path + "-shm", os.O_RDONLY)
            header = os.pread(self._shm_fd, _READ, 0)
            (last,) = _MX_FRAME.unpack_from(header, _MX_FRAME_AT)
            (backfilled,) = _MX_FRAME.unpack_from(header, _BACKFILL_AT)
        except (OSError, struct.error):
            return None
        return max(0, int(last) - int(backfilled))

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """After each of the writer's commits: wake the thread, or checkpoint here if far behind."""
        pending = self.pending_frames()
        if pending is None:
            # No wal-index to read (not WAL, or an unusual VFS): autocheckpoint as before.
            conn.execute(f"PRAGMA wal_autocheckpoint = {self.threshold}")
            return
        if pending >= 2 * self.threshold:
            with contextlib.suppress(sqlite3.Error):  # busy: the thread is checkpointing
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.writer_checkpoints += 1
        elif pending >= self.threshold:
            self._wake.set()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout_seconds, isolation_level=None)
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                # A failure (I/O, lock) leaves the frames for the next wake or the writer's bound.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    with self.checkpointed:
                        self.checkpoints += 1
                        self.checkpointed.notify_all()
        except sqlite3.Error:
            return  # never opened: the writer's 2x bound checkpoints instead
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        """Stop the thread, close its connection (before the writer's: that close checkpoints)."""
        self._stop = True
        self._wake.set()
        self._thread.join()
        if self._shm_fd is not None:
            os.close(self._shm_fd)
            self._shm_fd = None
