"""Notifications: Apprise URLs (Slack, Teams, e-mail, JSON webhooks, ...) plus a `log` channel.

Sending happens on one worker thread behind a bounded queue, so a slow or unreachable receiver
never blocks the watcher; each delivery is retried (tenacity) and every outcome is counted.
Apprise URLs carry tokens: they are never logged. Channels are named in logs as "scheme#n",
and a filter on Apprise's own logger drops its debug output and masks the URLs' secret parts.
Apprise is imported only when a non-log channel exists (the `watch` extra).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import structlog

from classifier import redact

LOG_CHANNEL = "log"
_log = structlog.get_logger("pipestate.alerts")
_NOTIFY_TYPES = {"FIRED": "failure", "REMINDED": "warning", "RESOLVED": "success", "INFO": "info"}


def channel_label(url: str, index: int) -> str:
    """How a channel is named in logs and counters: its scheme and position, never the URL."""
    if url == LOG_CHANNEL:
        return LOG_CHANNEL
    scheme = url.split("://", 1)[0] if "://" in url else "url"
    return f"{scheme}#{index}"


def url_secrets(url: str) -> set[str]:
    """The parts of a URL that may be secret: the URL, user, password, path pieces, query values."""
    parts = {url}
    try:
        split = urlsplit(url)
    except ValueError:
        return parts
    parts.update(p for p in (split.username, split.password) if p)
    parts.update(piece for piece in split.path.split("/") if len(piece) >= 4)
    parts.update(v for _, v in parse_qsl(split.query) if len(v) >= 4)
    if split.netloc:
        parts.add(split.netloc)
    # Schemes put tokens anywhere (slack://A/B/C/#channel?key=...): any long piece counts too.
    rest = url.split("://", 1)[-1]
    parts.update(piece for piece in re.split(r"[/?&=#:@]", rest) if len(piece) >= 6)
    return parts


_SECRETS: set[str] = set()


class _MaskSecrets(logging.Filter):
    """Masks every known URL secret in a record; drops records below `min_level`."""

    def __init__(self, min_level: int) -> None:
        super().__init__()
        self.min_level = min_level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return False
        text = record.getMessage()
        for secret in sorted(_SECRETS, key=len, reverse=True):
            text = text.replace(secret, "***")
        record.msg, record.args = text, ()
        return True


# Apprise's debug output is dropped; urllib3 (which Apprise's requests calls go through) logs
# each request's path at DEBUG, and webhook paths hold tokens: masked, not dropped, since
# other clients (BigQuery) share that logger.
_MASKS = {
    "apprise": _MaskSecrets(logging.WARNING),
    "urllib3.connectionpool": _MaskSecrets(logging.NOTSET),
}


def _guard_logs(url: str) -> None:
    _SECRETS.update(url_secrets(url))
    for name, mask in _MASKS.items():
        target = logging.getLogger(name)
        if mask not in target.filters:
            target.addFilter(mask)


class Notifier:
    """Delivers (title, body, kind) messages to every channel from a worker thread."""

    def __init__(
        self,
        channels: Sequence[str],
        *,
        attempts: int = 3,
        retry_wait_seconds: float = 0.2,
        queue_size: int = 1000,
    ) -> None:
        self.channels = tuple(channels)
        self.attempts = max(1, attempts)
        self.retry_wait_seconds = retry_wait_seconds
        self.counts = {"sent": 0, "failed": 0, "retried": 0, "dropped": 0}
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue(queue_size)
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._senders = [self._sender(url, i) for i, url in enumerate(self.channels, start=1)]
        self._thread: threading.Thread | None = None

    def _sender(self, url: str, index: int) -> tuple[str, Any]:
        label = channel_label(url, index)
        if url == LOG_CHANNEL:
            return label, None
        import apprise

        _guard_logs(url)
        app = apprise.Apprise()
        if not app.add(url):
            raise ValueError(f"channel {label}: not a valid Apprise URL (see apprise's URL list).")
        return label, app

    def notify(self, title: str, body: str, kind: str = "INFO") -> None:
        """Queue one message for every channel; never blocks (a full queue drops and counts)."""
        if not self.channels:
            return
        self._start()
        with self._lock:
            self._pending += 1
            self._idle.clear()
        try:
            self._queue.put_nowait((redact(title), redact(body), kind))
        except queue.Full:
            self._done()
            self._count("dropped")
            _log.warning("notification_dropped", reason="queue_full")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message was delivered or given up on; True if so."""
        return self._idle.wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Deliver what is queued (within `timeout`), then stop the worker."""
        if self._thread is not None:
            self.flush(timeout)
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="pipestate-notifier", daemon=True
                )
                self._thread.start()

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                for label, app in self._senders:
                    self._deliver(label, app, *item)
            finally:
                self._done()

    def _deliver(self, label: str, app: Any, title: str, body: str, kind: str) -> None:
        if app is None:
            _log.warning("alert", title=title, message=body)
            self._count("sent")
            return
        import tenacity

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.retry_wait_seconds, max=5.0),
            retry=tenacity.retry_if_result(lambda ok: not ok)
            | tenacity.retry_if_exception_type(Exception),
            before_sleep=lambda _: self._count("retried"),
            retry_error_callback=lambda _: False,
            reraise=False,
        )
        notify_type = _NOTIFY_TYPES.get(kind, "info")
        ok = retrying(lambda: bool(app.notify(body=body, title=title, notify_type=notify_type)))
        if ok:
            self._count("sent")
        else:
            self._count("failed")
            _log.warning("notification_failed", channel=label, attempts=self.attempts)
