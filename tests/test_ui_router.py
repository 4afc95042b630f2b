"""The served dashboard over real HTTP (uvicorn on 127.0.0.1, httpx): sign-in, session cookie,
CSP, escaping and tenant isolation, without a browser.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipestate.ui._session import COOKIE_NAME
from tests.dashboard_data import HOSTILE_MESSAGE, HOSTILE_PIPELINE
from tests.ui_server import KEYS, UIServer

ACME_KEY, GLOBEX_KEY = list(KEYS)
AS_OF = "2026-03-02"


@contextlib.contextmanager
def signed_in(server: UIServer, key: str) -> Iterator[httpx.Client]:
    """An HTTP client holding the session cookie of `key`'s org."""
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        response = client.post("/ui/login", data={"api_key": key})
        assert response.status_code == 303, response.text
        yield client


@pytest.fixture
def acme(ui_server: UIServer) -> Iterator[httpx.Client]:
    """A client signed in as acme."""
    with signed_in(ui_server, ACME_KEY) as client:
        yield client


class TestSignIn:
    """An API key entered once becomes a signed, HttpOnly, SameSite=Strict, expiring cookie."""

    def test_cookie_flags(self, ui_server: UIServer) -> None:
        """The session cookie is HttpOnly, SameSite=Strict, scoped to /ui, with a lifetime."""
        with httpx.Client(base_url=ui_server.url) as client:
            response = client.post("/ui/login", data={"api_key": ACME_KEY})
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=")
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Path=/ui" in cookie
        assert re.search(r"Max-Age=\d+", cookie)
        assert "Secure" not in cookie  # plain http on 127.0.0.1; Secure is set over https
        assert ACME_KEY not in cookie

    def test_wrong_key_is_refused(self, ui_server: UIServer) -> None:
        """A wrong key gets 401, an error on the form, and no cookie."""
        with httpx.Client(base_url=ui_server.url) as client:
            response = client.post("/ui/login", data={"api_key": "nope"})
        assert response.status_code == 401
        assert "not valid" in response.text
        assert "set-cookie" not in response.headers

    @pytest.mark.parametrize("path", ["/ui/overview", "/ui/runs", "/ui/runs/pl-078"])
    def test_pages_need_a_session(self, ui_server: UIServer, path: str) -> None:
        """Without a cookie, or with a forged one, pages redirect to the sign-in form."""
        for cookies in ({}, {COOKIE_NAME: "eyJvcmciOiJhY21lIn0.forged.sig"}):
            with httpx.Client(base_url=ui_server.url, cookies=cookies) as client:
                response = client.get(path)
            assert response.status_code == 303
            assert response.headers["location"] == "/ui/login"

    def test_progress_needs_a_session(self, ui_server: UIServer) -> None:
        """The live-update endpoint answers 401 without a session."""
        with httpx.Client(base_url=ui_server.url) as client:
            assert client.get("/ui/runs/pl-078/progress").status_code == 401

    def test_logout_forgets_the_session(self, ui_server: UIServer) -> None:
        """After signing out, the browser's cookie is cleared."""
        with signed_in(ui_server, ACME_KEY) as client:
            response = client.post("/ui/logout")
            assert response.status_code == 303
            assert f'{COOKIE_NAME}=""' in response.headers["set-cookie"]


class TestSecurityHeaders:
    """Every page has a CSP with a fresh script nonce, and every script carries it."""

    def test_csp_nonce(self, acme: httpx.Client) -> None:
        """Scripts run only with the response's nonce; two responses have different nonces."""
        nonces = []
        for _ in range(2):
            response = acme.get(f"/ui/overview?to={AS_OF}")
            csp = response.headers["content-security-policy"]
            nonce = re.search(r"'nonce-([^']+)'", csp)
            assert nonce
            assert "default-src 'none'" in csp
            assert "unsafe-eval" not in csp
            scripts = re.findall(r"<script([^>]*)>", response.text)
            assert scripts
            for attrs_ in scripts:
                assert 'type="application/json"' in attrs_ or f'nonce="{nonce[1]}"' in attrs_
            nonces.append(nonce[1])
        assert nonces[0] != nonces[1]
        assert response.headers["x-content-type-options"] == "nosniff"

    def test_plotly_is_served_locally(self, acme: httpx.Client) -> None:
        """The page loads plotly.js from the UI itself, never a CDN."""
        page = acme.get(f"/ui/overview?to={AS_OF}").text
        src = re.search(r'<script nonce="[^"]+" src="([^"]+)"', page)
        assert src
        assert src[1].startswith("/ui/static/plotly-")
        script = acme.get(src[1])
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "cdn" not in page.lower()


class TestEscapingAndIsolation:
    """User strings are escaped; one org cannot reach another's runs."""

    def test_hostile_strings_are_escaped(
        self, acme: httpx.Client, dashboard_db: tuple[Path, dict[str, str]]
    ) -> None:
        """A pipeline named <script> and an HTML error message appear only as escaped text."""
        run_id = dashboard_db[1]["dependency"]
        html = acme.get(f"/ui/runs/{run_id}").text
        assert "<script>alert(1)" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img src=x" not in html
        assert "&lt;img src=x onerror=" in html
        runs = acme.get(f"/ui/runs?pipeline={HOSTILE_PIPELINE}&from=2026-02-20&to={AS_OF}").text
        assert run_id in runs
        assert HOSTILE_PIPELINE not in runs
        assert HOSTILE_MESSAGE not in html

    def test_other_org_gets_404(
        self, ui_server: UIServer, dashboard_db: tuple[Path, dict[str, str]]
    ) -> None:
        """globex asking for acme's run gets the same 404 as for a run that does not exist."""
        run_id = dashboard_db[1]["dependency"]
        with signed_in(ui_server, GLOBEX_KEY) as client:
            response = client.get(f"/ui/runs/{run_id}")
            assert response.status_code == 404
            assert "extract" not in response.text
            assert client.get("/ui/runs/no-such-run").status_code == 404
            progress = client.get(f"/ui/runs/{run_id}/progress").json()
            assert progress == {"transitions": 0, "last_time": None}
            runs = client.get(f"/ui/runs?from=2026-02-20&to={AS_OF}").text
            assert run_id not in runs

    def test_bad_filter_is_named(self, acme: httpx.Client) -> None:
        """A malformed filter gets 400 and a message naming the field and the value."""
        response = acme.get("/ui/runs?from=yesterday")
        assert response.status_code == 400
        assert "&#39;from&#39; must be a date YYYY-MM-DD (got &#39;yesterday&#39;)" in response.text
