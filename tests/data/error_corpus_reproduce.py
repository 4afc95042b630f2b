"""Reproduce corpus entries by calling the real libraries (not run by the test suite).

Usage: PYTHONPATH=<site with the libraries> python tests/data/error_corpus_reproduce.py OUT.jsonl

Each case calls an installed library (or the standard library) against 127.0.0.1 only: a
refused port, a scripted TCP or HTTP server, or a local PostgreSQL / MariaDB / Redis server when
one is running. The exception it raises is recorded as the library produced it: message, class,
MRO, args and the attributes the classifier reads. The label is the right answer, written by
hand next to each case; the classifier's verdict plays no part. The source names the library
and version that produced the entry.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

T, P, TO, V, D = "TRANSIENT", "PERMANENT", "TIMEOUT", "VALIDATION_ERROR", "DEPENDENCY_FAILURE"
CASES: list[tuple[dict[str, Any], Callable[[], object]]] = []
_ATTRS = ("pgcode", "sqlstate", "retriable", "code", "status", "status_code", "reason")
_ATTRS += ("errors", "_error_labels", "message", "errno", "winerror")
_ATTRS += ("sqlite_errorname", "sqlite_errorcode", "smtp_code")


def case(label: str, family: str, dist: str, what: str, split: str = "tune") -> Callable[..., Any]:
    """Register a function that raises the exception of one corpus entry."""

    def register(func: Callable[[], object]) -> Callable[[], object]:
        CASES.append(
            ({"label": label, "family": family, "dist": dist, "what": what, "split": split}, func)
        )
        return func

    return register


def _version(dist: str) -> str:
    """'name version' of an installed distribution, or the Python version for the stdlib."""
    if dist == "python":
        return f"CPython {sys.version.split()[0]}"
    return f"{dist} {importlib.metadata.version(dist)}"


def _qualified(cls: type) -> str:
    """module.qualname."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _jsonable(value: object) -> bool:
    """True when value survives a JSON round trip unchanged."""
    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        return False


def record(meta: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """The corpus entry for one raised exception."""
    entry: dict[str, Any] = {"message": str(exc)[:4000], "exception_class": _qualified(type(exc))}
    entry["bases"] = [_qualified(c) for c in type(exc).__mro__[1:] if c is not object]
    if exc.args and any(isinstance(a, int) for a in exc.args) and _jsonable(list(exc.args)):
        entry["args"] = list(exc.args)
    attributes = {}
    for name in _ATTRS:
        try:
            value = getattr(exc, name, None)
        except Exception:
            continue
        if callable(value) or value is None or not _jsonable(value):
            if isinstance(value, set | frozenset) and _jsonable(sorted(value)):
                attributes[name] = sorted(value)
            continue
        if name == "message" and value == entry["message"]:
            continue
        attributes[name] = value
    recipients = getattr(exc, "recipients", None)  # smtplib: {address: (code, bytes reply)}
    if isinstance(recipients, dict):
        attributes["recipients"] = {
            str(k): [v[0], v[1].decode("utf-8", "replace") if isinstance(v[1], bytes) else v[1]]
            for k, v in recipients.items()
            if isinstance(v, tuple) and len(v) == 2
        }
    diag = getattr(exc, "diag", None)
    if getattr(diag, "sqlstate", None):
        attributes["sqlstate"] = diag.sqlstate
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and _jsonable(response):
        attributes["response"] = {
            k: response[k] for k in ("Error", "ResponseMetadata") if k in response
        }
    elif response is not None:
        fields = {}
        for name in ("status_code", "status"):
            value = getattr(response, name, None)
            if isinstance(value, int):
                fields[name] = value
        headers = getattr(response, "headers", None)
        if headers is not None:
            fields["headers"] = {
                k: v for k, v in dict(headers).items() if k.lower() == "retry-after"
            }
        if fields:
            entry["response"] = fields
    headers = getattr(exc, "headers", None)
    if headers is not None and hasattr(headers, "items"):
        kept = {k: v for k, v in dict(headers).items() if k.lower() == "retry-after"}
        if kept:
            attributes["headers"] = kept
    if attributes:
        entry["attributes"] = attributes
    entry["label"] = meta["label"]
    entry["family"] = meta["family"]
    entry["source"] = f"reproduced: {_version(meta['dist'])}: {meta['what']}"
    if meta["split"] == "holdout":
        entry["holdout"] = True
    elif meta["split"] == "generalisation":
        entry["holdout"] = True
        entry["generalisation"] = True
    if meta.get("batch"):
        entry["batch"] = meta["batch"]
    return entry


# -- local servers (127.0.0.1 only) ------------------------------------------------------------
def refused_port() -> int:
    """A port with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def http_server(
    status: int,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    delay: float = 0.0,
    content_type: str = "text/plain",
) -> Iterator[str]:
    """A one-answer HTTP server; yields its base URL."""
    import time

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            if delay:
                time.sleep(delay)
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(Exception):
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def tcp_script(
    greeting: bytes = b"", replies: list[bytes] | None = None, close_after: bool = False
) -> Iterator[int]:
    """A TCP server that sends a greeting, then one scripted reply per line received."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            if greeting:
                self.request.sendall(greeting)
            if close_after:
                return
            for reply in replies or []:
                try:
                    data = self.request.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                self.request.sendall(reply)
            with contextlib.suppress(OSError):
                while self.request.recv(65536):
                    pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def main(out: str, only: str | None = None) -> None:
    """Run every case, write the entries (one JSON object per line)."""
    sys.modules.setdefault("error_corpus_reproduce", sys.modules[__name__])
    import error_corpus_batch2  # noqa: F401 - registers the batch-2 held-out cases
    import error_corpus_cases  # noqa: F401 - registers the cases
    import error_corpus_libraries  # noqa: F401 - registers the library cases
    import error_corpus_more  # noqa: F401 - registers the held-out cases
    import error_corpus_servers  # noqa: F401 - registers the server cases

    before = len(CASES)
    import error_corpus_batch3  # noqa: F401 - batch 3, named libraries (blind)
    import error_corpus_batch3b  # noqa: F401 - batch 3, libraries no rule names (blind)

    for meta, _ in CASES[before:]:
        meta["batch"] = 3
    before = len(CASES)
    import error_corpus_batch4  # noqa: F401 - batch 4, named libraries (blind)
    import error_corpus_batch4b  # noqa: F401 - batch 4, libraries no rule names (blind)

    for meta, _ in CASES[before:]:
        meta["batch"] = 4
    entries = []
    for meta, func in CASES:
        if only in ("batch3", "batch4"):
            if meta.get("batch") != int(only[-1]):
                continue
        elif only and only not in meta["family"]:
            continue
        try:
            result = func()
        except BaseException as exc:
            entries.append(record(meta, exc))
            continue
        print(f"no exception: {meta['what']} -> {result!r}", file=sys.stderr)
    with open(out, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    print(f"{len(entries)} entries", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
