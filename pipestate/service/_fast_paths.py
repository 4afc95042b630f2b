"""Fast paths: clean requests to the two hot routes answered without FastAPI's machinery.

Why: a run submit (POST /api/v1/pipelines/run/...) and the read that follows a run
(GET /api/v1/runs/{org}/{id}[?wait=true]) are the service's hot routes, and FastAPI's
per-request work (matching every route, solving seven nested dependencies, validating the
query, the body and the response) was most of their cost on the API thread. That thread shares
the GIL with the runner thread, so under load every request queues behind the others' share of
it (issue 13).

What: a request that is *clean* in every respect (the route's method, path segments matching
the identifier rule, at most `wait` and `timeout` in the query with plain values, one X-API-Key
the key ring's cache knows for the org in the path; for a submit, an empty body or a JSON object
sent as application/json within the body limit; for a read, a run this process holds in memory)
is answered here, through the same function the route uses (`submit()`, `read_run()`) and the
same problem mapping as the app's exception handlers. Anything else, including every error the
client made, falls back to the FastAPI route (with the body replayed), so each 4xx keeps its one
source and its wording; the routes also stay the OpenAPI schema's contract.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from pipestate.service.errors import problem_for
from pipestate.service.routers import API_PREFIX
from pipestate.service.routers.pipelines import submit
from pipestate.service.routers.runs import read_run

SUBMIT_PREFIX = f"{API_PREFIX}/pipelines/run/"
READ_PREFIX = f"{API_PREFIX}/runs/"
# The routes' templates: the latency histogram labels fast answers as the routes' own.
SUBMIT_TEMPLATE = SUBMIT_PREFIX + "{org_slug}/{provider}/{domain}/{pipeline}"
READ_TEMPLATE = READ_PREFIX + "{org_slug}/{pipeline_logging_id}"
# models.SLUG_PATTERN without its anchors, for fullmatch (a "$" would also accept a final "\n").
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_WAIT = {"true": True, "false": False, "1": True, "0": False}
_TIMEOUT = re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,6})?")
_MAX_TIMEOUT = 3600.0  # the routes' Query(le=3600)
_DEFAULT_TIMEOUT = 60.0
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Fallback(Exception):
    """Not a clean request: the full route answers it."""


def _segments(scope: Scope) -> tuple[str, list[str]] | None:
    """(the route's template, its path segments) for a hot route's method and shape, else None."""
    method, path = scope["method"], scope["path"]
    if scope.get("root_path"):
        return None
    if method == "POST" and path.startswith(SUBMIT_PREFIX):
        template, parts = SUBMIT_TEMPLATE, path[len(SUBMIT_PREFIX) :].split("/")
        count = 4
    elif method == "GET" and path.startswith(READ_PREFIX):
        template, parts = READ_TEMPLATE, path[len(READ_PREFIX) :].split("/")
        count = 2
    else:
        return None
    if len(parts) != count or not all(_SEGMENT.fullmatch(part) for part in parts):
        return None
    return template, parts


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


class FastPaths:
    """Answer a clean submit or read at the edge; tell the caller to pass anything else on."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[str | None, Receive]:
        """(the route's template, _) when answered; else (None, the receive() the app must use)."""
        found = _segments(scope)
        if found is None:
            return None, receive
        template, parts = found
        try:
            wait, timeout = _query(scope["query_string"])
            token, content_type = _headers(scope)
        except _Fallback:
            return None, receive
        body, messages = b"", []
        if template is SUBMIT_TEMPLATE:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    return None, _replay(messages, receive)
                body += message.get("body", b"")
                if len(body) > self.max_bytes:  # the body limit answers it (413)
                    return None, _replay(messages, receive)
                if not message.get("more_body", False):
                    break
        state = getattr(scope["app"].state, "service", None)
        try:
            params = _params(body, content_type)
            if state is None:
                raise _Fallback
            known, key = state.keys.cached(token)
            if not known or key is None or key.org_slug != parts[0]:
                raise _Fallback  # the route's 401 / 403 (or a store read of a new key)
            live = None
            if template is READ_TEMPLATE:
                live = state.runs.get(parts[0], parts[1])
                if live is None:
                    raise _Fallback  # not in memory: the route reads the store
        except _Fallback:
            return None, _replay(messages, receive)
        state.metrics.labelled(state.metrics.fast_answers, template).inc()
        status = 200
        try:
            answer: BaseModel
            if template is SUBMIT_TEMPLATE:
                pipeline = "/".join(parts[1:])
                answer, status = await submit(
                    state.runs, key, pipeline, params, wait=wait, timeout=timeout
                )
            else:
                answer = await read_run(
                    state, parts[0], parts[1], live=live, wait=wait, timeout=timeout
                )
        except Exception as exc:
            response = problem_for(exc)
            if response is None:
                raise  # a bug: the app's 500 handler answers it
            await response(scope, _replay([], receive), send)
            return template, receive
        payload = answer.model_dump_json().encode()
        headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        return template, receive


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive() that gives the messages already read, then reads on."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
