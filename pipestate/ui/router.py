"""The served dashboard: `build_ui_router(store, authenticate)` returns a FastAPI router for /ui.

Pages: /ui/overview, /ui/runs (filters), /ui/runs/{id} (live while RUNNING, by polling
/ui/runs/{id}/progress), /ui/login and /ui/logout. Every page reads one org, the one named by the
signed session cookie; another org's run is answered exactly like a missing one (404). Each
response carries a Content-Security-Policy whose script nonce is fresh per response.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from persistence.stores.base import Store
from pipestate.ui import charts, render
from pipestate.ui._session import COOKIE_NAME, SessionSigner, default_secret
from pipestate.ui.data import MAX_DAYS, RUN_STATES, RunFilters, load_overview, load_progress
from pipestate.ui.data import load_run as load_run_data
from pipestate.ui.data import load_runs as load_runs_data

Authenticate = Callable[[str], str | None]
_MAX_KEY_BYTES = 4096
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _html(body: str, page: render.Page, status: int = 200) -> HTMLResponse:
    """An HTML response with the page's CSP (its nonce) and the security headers."""
    headers = {
        **_SECURITY_HEADERS,
        "Content-Security-Policy": render.CSP_SERVED.format(nonce=page.nonce),
    }
    return HTMLResponse(body, status_code=status, headers=headers)


def _date(value: str | None, field: str) -> dt.date | None:
    """A YYYY-MM-DD filter value, or ValueError naming the field."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field!r} must be a date YYYY-MM-DD (got {value!r}).") from None


def _filters(request: Request) -> tuple[RunFilters, str | None]:
    """The runs filters from the query string, or defaults plus a message naming what was wrong."""
    q = request.query_params
    state = q.get("state") or None
    try:
        if state is not None and state not in RUN_STATES:
            raise ValueError(f"'state' must be one of {list(RUN_STATES)} (got {state!r}).")
        filters = RunFilters(
            pipeline=q.get("pipeline") or None,
            state=state,
            date_from=_date(q.get("from"), "from"),
            date_to=_date(q.get("to"), "to"),
        )
        filters.window(dt.datetime.now(dt.UTC).date())
    except ValueError as exc:
        return RunFilters(), str(exc)
    return filters, None


def build_ui_router(
    store: Store,
    authenticate: Authenticate,
    *,
    secret: str | None = None,
    session_hours: float = 8.0,
    poll_ms: int = 2000,
    prefix: str = "/ui",
    subject_of: Callable[[str], str | None] | None = None,
    session_valid: Callable[[str], bool] | None = None,
) -> APIRouter:
    """The dashboard's routes on `store`; `authenticate(api_key)` returns the key's org or None.

    With `subject_of` (api key -> key id) and `session_valid` (key id -> still usable), a session
    ends as soon as the key it was opened with is revoked, not when the cookie expires.
    """
    signer = SessionSigner(secret or default_secret(), int(session_hours * 3600))
    router = APIRouter(prefix=prefix, include_in_schema=False)

    def session_org(request: Request) -> str | None:
        """The org of the request's valid session cookie, if any (and if its key still works)."""
        session = signer.session_of(request.cookies.get(COOKIE_NAME))
        if session is None:
            return None
        org, subject = session
        if session_valid is not None and (subject is None or not session_valid(subject)):
            return None
        return org

    def page(org: str | None, section: str, **extra: Any) -> render.Page:
        """A served page for this router's prefix."""
        return render.page_for(
            served=True, org=org, section=section, base=prefix, poll_ms=poll_ms, **extra
        )

    def to_login() -> RedirectResponse:
        """Send an unauthenticated browser to the sign-in form."""
        return RedirectResponse(f"{prefix}/login", status_code=303, headers=_SECURITY_HEADERS)

    @router.get("")
    def home() -> RedirectResponse:
        """The dashboard's entry point is the overview."""
        return RedirectResponse(f"{prefix}/overview", status_code=303)

    @router.get("/login")
    def login_form(request: Request) -> Response:
        """The sign-in form (or the overview when already signed in)."""
        if session_org(request):
            return RedirectResponse(f"{prefix}/overview", status_code=303)
        p = page(None, "login")
        return _html(render.render_login(p, hours=session_hours), p)

    @router.post("/login")
    async def login(request: Request) -> Response:
        """Check the API key once; on success set the signed session cookie."""
        body = await request.body()
        form = urllib.parse.parse_qs(body[: _MAX_KEY_BYTES * 2].decode("utf-8", "replace"))
        api_key = (form.get("api_key") or [""])[0].strip()
        org = await run_in_threadpool(authenticate, api_key) if api_key else None
        if not org:
            p = page(None, "login")
            message = "That API key is not valid."
            return _html(render.render_login(p, hours=session_hours, error=message), p, 401)
        response = RedirectResponse(
            f"{prefix}/overview", status_code=303, headers=_SECURITY_HEADERS
        )
        response.set_cookie(
            COOKIE_NAME,
            signer.issue(org, subject_of(api_key) if subject_of else None),
            max_age=signer.max_age_seconds,
            path=prefix,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    def logout() -> Response:
        """Forget the session cookie."""
        response = to_login()
        response.delete_cookie(COOKIE_NAME, path=prefix, httponly=True, samesite="strict")
        return response

    @router.get("/overview")
    def overview(request: Request) -> Response:
        """Error types over time, retry success, the two heatmaps and the stuck list."""
        org = session_org(request)
        if org is None:
            return to_login()
        q = request.query_params
        try:
            days = int(q.get("days", "7"))
            if not 1 <= days <= MAX_DAYS:
                raise ValueError
        except ValueError:
            days = 7
        try:
            as_of = _date(q.get("to"), "to")
        except ValueError:
            as_of = None
        data = load_overview(store, org, days=days, as_of=as_of)
        p = page(org, "overview", figures=render.overview_figures(data))
        return _html(render.render_overview(data, p, None), p)

    @router.get("/runs")
    def runs(request: Request) -> Response:
        """Recent runs with filters; each row links to its run."""
        org = session_org(request)
        if org is None:
            return to_login()
        filters, error = _filters(request)
        rows = load_runs_data(store, org, filters)
        p = page(org, "runs")
        return _html(render.render_runs(rows, filters, p, error), p, 400 if error else 200)

    @router.get("/runs/{run_id}")
    def run(request: Request, run_id: str) -> Response:
        """One run: Gantt, error context and transitions; another org's run is a 404."""
        org = session_org(request)
        if org is None:
            return to_login()
        data = load_run_data(store, org, run_id)
        if data is None:
            p = page(org, "runs")
            body = render.render_runs([], RunFilters(), p, f"No run {run_id!r} in this org.")
            return _html(body, p, 404)
        p = page(org, "runs", figures=[render.figure("fig-gantt", charts.gantt(data))])
        return _html(render.render_run(data, p), p)

    @router.get("/runs/{run_id}/progress")
    def progress(request: Request, run_id: str) -> Response:
        """The run's transition count and latest time, polled by its live page."""
        org = session_org(request)
        if org is None:
            return JSONResponse({"detail": "sign in first"}, 401, headers=_SECURITY_HEADERS)
        return JSONResponse(load_progress(store, org, run_id), headers=_SECURITY_HEADERS)

    @router.get(f"/static/plotly-{render.PLOTLY_VERSION}.min.js")
    def plotly_js() -> Response:
        """plotly.js from the plotly package; versioned URL, so cached for a year."""
        headers = {"Cache-Control": "public, max-age=31536000, immutable"}
        headers["X-Content-Type-Options"] = "nosniff"
        return Response(render.plotly_js(), media_type="text/javascript", headers=headers)

    return router
