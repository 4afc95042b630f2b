"""The submit fast path: a clean POST /api/v1/pipelines/run/... answered without FastAPI.

Why: the submit is the service's hot route, and FastAPI's per-request work (routing through every
route, solving seven nested dependencies, validating the query, the body and the response) was
most of its cost on the API thread; that thread shares the GIL with the runner thread, so under
load every request queues behind the others' share of it (issue 13).

What: a request that is *clean* in every respect (POST, four segments matching the identifier
rule, at most `wait` and `timeout` in the query with plain values, one X-API-Key the key ring's
cache knows, an empty body or a JSON object sent as application/json within the body limit) is
answered here, through the same `submit()` the route uses and the same problem mapping as the
app's exception handlers. Anything else, including every error the client made, falls back to
the FastAPI route (with the body replayed), so each 4xx keeps its one source and its wording;
the route also stays the OpenAPI schema's contract for this path.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Message, Receive, Scope, Send

from pipestate.service.errors import problem_for
from pipestate.service.routers import API_PREFIX
from pipestate.service.routers.pipelines import submit

PREFIX = f"{API_PREFIX}/pipelines/run/"
# The route's template: the latency histogram labels fast answers as the route's own.
TEMPLATE = PREFIX + "{org_slug}/{provider}/{domain}/{pipeline}"
# models.SLUG_PATTERN without its anchors, for fullmatch (a "$" would also accept a final "\n").
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_WAIT = {"true": True, "false": False, "1": True, "0": False}
_TIMEOUT = re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,6})?")
_MAX_TIMEOUT = 3600.0  # the route's Query(le=3600)
_DEFAULT_TIMEOUT = 60.0
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Fallback(Exception):
    """Not a clean submit: the full route answers it."""


def _segments(scope: Scope) -> list[str]:
    if scope["method"] != "POST" or scope.get("root_path"):
        raise _Fallback
    path: str = scope["path"]
    if not path.startswith(PREFIX):
        raise _Fallback
    parts = path[len(PREFIX) :].split("/")
    if len(parts) != 4 or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise _Fallback
    return parts


def _query(raw: bytes) -> tuple[bool, float]:
    """(wait, timeout) from plain values only; anything FastAPI might read otherwise falls back."""
    wait, timeout = False, _DEFAULT_TIMEOUT
    if not raw:
        return wait, timeout
    seen: set[str] = set()
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            raise _Fallback
        seen.add(name)
        if name == "wait" and value in _WAIT:
            wait = _WAIT[value]
        elif name == "timeout" and _TIMEOUT.fullmatch(value):
            timeout = float(value)
            if not 0 < timeout <= _MAX_TIMEOUT:
                raise _Fallback
        else:
            raise _Fallback
    return wait, timeout


def _headers(scope: Scope) -> tuple[str, bytes | None]:
    """(the one X-API-Key, the content type or None)."""
    token: str | None = None
    content_type: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            if token is not None:
                raise _Fallback
            token = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value
    if not token:
        raise _Fallback
    return token, content_type


def _params(body: bytes, content_type: bytes | None) -> dict[str, Any]:
    if not body:
        return {}
    if content_type is None or content_type.split(b";")[0].strip().lower() != b"application/json":
        raise _Fallback
    try:
        params = json.loads(body)
    except (ValueError, RecursionError):
        raise _Fallback from None
    if not isinstance(params, dict):
        raise _Fallback
    return params


class FastSubmit:
    """Answer a clean submit at the edge; tell the caller to pass anything else on."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """None when answered; else the receive() the full app must use (body replayed)."""
        try:
            org, provider, domain, pipeline = _segments(scope)
            wait, timeout = _query(scope["query_string"])
            token, content_type = _headers(scope)
        except _Fallback:
            return receive
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return _replay(messages, receive)
            body += message.get("body", b"")
            if len(body) > self.max_bytes:  # the body limit answers it (413)
                return _replay(messages, receive)
            if not message.get("more_body", False):
                break
        state = getattr(scope["app"].state, "service", None)
        try:
            params = _params(body, content_type)
            if state is None:
                raise _Fallback
            known, key = state.keys.cached(token)
            if not known or key is None or key.org_slug != org:
                raise _Fallback  # the route's 401 / 403 (or a store read of a new key)
        except _Fallback:
            return _replay(messages, receive)
        state.metrics.fast_submits.inc()
        try:
            answer, status = await submit(
                state.runs, key, f"{provider}/{domain}/{pipeline}", params,
                wait=wait, timeout=timeout,
            )  # fmt: skip
        except Exception as exc:
            response = problem_for(exc)
            if response is None:
                raise  # a bug: the app's 500 handler answers it
            await response(scope, _replay([], receive), send)
            return None
        payload = answer.model_dump_json().encode()
        headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive() that gives the messages already read, then reads on."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
