"""A real HTTP receiver on 127.0.0.1 for exporter tests: records every POST, optionally slowly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs


@attrs.frozen
class Received:
    """One request as the receiver saw it."""

    path: str
    content_type: str
    body: bytes


class Receiver:
    """A threading HTTP server that answers 200 to every POST after `delay` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.requests: list[Received] = []
        self.arrived = threading.Semaphore(0)
        self.entered = threading.Semaphore(0)  # released as a request begins (before any delay)
        # Set on close: a delayed handler returns at once, so no thread outlives the test.
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:43123."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.entered.release()
                if receiver.delay:
                    receiver.release.wait(receiver.delay)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, self.headers.get("Content-Type", ""), body)
                    )
                receiver.arrived.release()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: object) -> None:
                return None  # keep pytest output clean

        return Handler

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def close(self) -> None:
        """Release delayed handlers, stop serving and close the socket."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def bodies(self, path_suffix: str = "") -> list[bytes]:
        """Bodies of the requests whose path ends with `path_suffix`, in arrival order."""
        with self._lock:
            return [r.body for r in self.requests if r.path.endswith(path_suffix)]


@contextmanager
def receiving(delay: float = 0.0) -> Iterator[Receiver]:
    """A started Receiver, closed on exit."""
    receiver = Receiver(delay)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.close()
