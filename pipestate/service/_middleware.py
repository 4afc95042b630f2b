"""The service's one ASGI layer: request latency histogram, bounded bodies (413), submit fast path.

One layer rather than a body-limit and a timing middleware: each layer costs every request a
coroutine and wrapped receive()/send() closures on the API thread (issue 13).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipestate.service._fast_paths import FastPaths
from pipestate.service.errors import problem_response
from pipestate.service.metrics import ServiceMetrics


class _TooLarge(Exception):
    pass


class Edge:
    """Time each request under its route template; refuse bodies over `max_bytes` with 413.

    A clean run submit or read is answered by a fast path (_fast_paths.py) before the app sees it.
    """

    def __init__(
        self, app: ASGIApp, metrics: ServiceMetrics, max_bytes: int, fast: bool = True
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.fast = FastPaths(max_bytes) if fast else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request (fast path, 413 or the app); record its latency and status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def capture(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
            await send(message)

        template: str | None = None
        try:
            if self._declared_too_large(scope):
                await self._refuse(scope, receive, capture)
                return
            if self.fast is not None:
                template, receive = await self.fast(scope, receive, capture)
                if template is not None:
                    return
            await self._app(scope, receive, capture, lambda: started)
        finally:
            if template is None:
                route: Any = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
            self.metrics.labelled(
                self.metrics.latency, scope.get("method", ""), template, str(status)
            ).observe(time.perf_counter() - start)

    def _declared_too_large(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value) > self.max_bytes
                except ValueError:
                    return False
        return False

    async def _app(self, scope: Scope, receive: Receive, send: Send, started: Any) -> None:
        """The app, with a receive() that counts body bytes (413 once over the limit)."""
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting, send)
        except _TooLarge:
            if not started():
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413, f"request body larger than {self.max_bytes} bytes", slug="body-too-large"
        )
        await response(scope, receive, send)
