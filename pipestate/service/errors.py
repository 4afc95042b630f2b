"""RFC 9457 problem details: the service's errors and the one set of handlers that renders them.

Every error response is `application/problem+json` with type, title, status and detail; domain
errors (a bad pipeline config, an illegal transition, a store outage, an unknown run) map to
statuses here and nowhere else. Details never echo a key.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from classifier import redact
from classifier.errors import ValidationError
from persistence.queries import QueryError
from persistence.stores.base import StoreError
from statemachine.errors import IllegalTransition

PROBLEM_JSON = "application/problem+json"
_log = logging.getLogger("pipestate.service")


class Problem(Exception):
    """An error the API reports as problem+json; `extra` members are added to the body."""

    status = 500
    slug = "internal-error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class Unauthorized(Problem):
    """No key, a malformed key, an unknown or revoked key."""

    status, slug = 401, "unauthorized"


class Forbidden(Problem):
    """A valid key for something else (another org, root vs org)."""

    status, slug = 403, "forbidden"


class NotFound(Problem):
    """Nothing there, or nothing this key may see (the two are never told apart)."""

    status, slug = 404, "not-found"


class Conflict(Problem):
    """The resource is in a state that refuses the request (e.g. cancel of a finished run)."""

    status, slug = 409, "conflict"


class Unprocessable(Problem):
    """A well-formed request the server cannot act on (invalid pipeline or parameters)."""

    status, slug = 422, "unprocessable"


class TooBusy(Problem):
    """Admission refused: too many running pipelines (process or org)."""

    status, slug = 429, "too-many-running"


class ShuttingDown(Problem):
    """The process is draining: no new runs."""

    status, slug = 503, "shutting-down"


class Unavailable(Problem):
    """The store cannot be reached."""

    status, slug = 503, "store-unavailable"


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response; detail is redacted (it may quote user input)."""
    phrase = HTTPStatus(status).phrase
    body = {
        "type": f"urn:pipestate:problem:{slug}" if slug else "about:blank",
        "title": phrase,
        "status": status,
        "detail": redact(detail)[:2000],
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def problem_for(exc: BaseException) -> JSONResponse | None:
    """The problem response of a domain error (None for anything else: a bug, a 500).

    One mapping for the app's exception handlers and the fast paths (_fast_paths.py).
    """
    if isinstance(exc, Problem):
        return problem_response(
            exc.status, exc.detail, slug=exc.slug, headers=exc.headers, **exc.extra
        )
    if isinstance(exc, ValidationError):
        return problem_response(422, str(exc), slug="validation-error")
    if isinstance(exc, IllegalTransition):
        return problem_response(409, str(exc), slug="illegal-transition")
    if isinstance(exc, QueryError):
        return problem_response(422, str(exc), slug="invalid-query")
    if isinstance(exc, StoreError):
        _log.warning("store error: %s", redact(str(exc)))
        return problem_response(503, "the audit store is unavailable", slug="store-unavailable")
    return None


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    async def _domain(request: Request, exc: Exception) -> JSONResponse:
        response = problem_for(exc)
        assert response is not None  # registered only for the domain errors' types
        return response

    for domain_error in (Problem, ValidationError, IllegalTransition, QueryError, StoreError):
        app.add_exception_handler(domain_error, _domain)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, _validation_detail(exc), slug="invalid-request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal error (logged)", slug="internal-error")
