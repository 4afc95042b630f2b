"""A small app around the dashboard router for the tests, run by uvicorn in its own process.

`create_app()` reads the SQLite path and the API keys from the environment that
tests/ui_server.py sets; keys are kept only as SHA-256 digests and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

DB_ENV = "PIPESTATE_TEST_UI_DB"
KEYS_ENV = "PIPESTATE_TEST_UI_KEYS"  # JSON {"api key": "org"}
POLL_ENV = "PIPESTATE_TEST_UI_POLL_MS"


def digest(api_key: str) -> bytes:
    """SHA-256 of a key: what the test app keeps instead of the key."""
    return hashlib.sha256(api_key.encode()).digest()


def create_app() -> Any:
    """A FastAPI app serving the dashboard on the test store."""
    from fastapi import FastAPI

    from persistence import SQLiteStore
    from pipestate.ui.router import build_ui_router

    keys = [(digest(k), org) for k, org in json.loads(os.environ[KEYS_ENV]).items()]

    def authenticate(api_key: str) -> str | None:
        """The org of a known key (every stored digest compared, in constant time)."""
        wanted, found = digest(api_key), None
        for stored, org in keys:
            if hmac.compare_digest(stored, wanted):
                found = org
        return found

    app = FastAPI()
    store = SQLiteStore(os.environ[DB_ENV])
    app.include_router(
        build_ui_router(store, authenticate, poll_ms=int(os.environ.get(POLL_ENV, "2000")))
    )
    return app
