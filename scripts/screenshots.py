"""Regenerate the dashboard screenshots in docs/img/ (`make screenshots`).

Loads the dashboard tests' known history (tests/dashboard_data.py, with readable pipeline names
and messages instead of the hostile ones) into a temporary SQLite file, serves it with the test
app on 127.0.0.1 and photographs each page in Debian's headless Chromium.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from persistence import SQLiteStore  # noqa: E402
from statemachine.records import TransitionRecord  # noqa: E402
from tests.dashboard_data import HOSTILE_MESSAGE, HOSTILE_PIPELINE, dashboard_history  # noqa: E402
from tests.test_persistence_parity import NOW, load  # noqa: E402
from tests.ui_server import CHROMIUM, CHROMIUM_ARGS, KEYS, chromium_problem, run_ui_server  # noqa: E402

NAMES = ("nightly-orders", "hourly-sync", "crm-export", "billing")


def readable(record: TransitionRecord, live_shift: dt.timedelta, live_id: str) -> TransitionRecord:
    """The record with readable names and messages; the live run moved to a few minutes ago."""
    changes: dict[str, Any] = {}
    if record.pipeline_logging_id == live_id:
        when = record.transition_time + live_shift
        changes.update(transition_time=when, transition_date=when.date())
    if record.entity_type == "PIPELINE" and record.entity_name in ("acme", "globex"):
        changes["entity_name"] = NAMES[int(record.pipeline_logging_id[3:]) % len(NAMES)]
    if record.entity_name == HOSTILE_PIPELINE:
        changes["entity_name"] = "nightly-orders"
    if record.error_message == HOSTILE_MESSAGE:
        changes["error_message"] = "HTTP 503 from api.example.com: service unavailable"
    return attrs.evolve(record, **changes) if changes else record


def main(out_dir: str) -> int:
    """Write overview.png, runs.png, run.png and run-live.png into out_dir."""
    problem = chromium_problem()
    if problem:
        print(f"screenshots: {problem} (run `make chromium`)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    history, ids = dashboard_history()
    with tempfile.TemporaryDirectory(prefix="pipestate-shots-") as tmp:
        db = Path(tmp) / "shots.db"
        store = SQLiteStore(db)
        live = [r for r in history.records if r.pipeline_logging_id == ids["running"]]
        shift = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3) - live[0].transition_time
        load(store, [readable(r, shift, ids["running"]) for r in history.records])
        store.close()
        day = NOW.date().isoformat()
        shots = {
            "overview.png": f"/ui/overview?to={day}",
            "runs.png": f"/ui/runs?from=2026-02-24&to={day}",
            "run.png": f"/ui/runs/{ids['dependency']}",
            "run-live.png": f"/ui/runs/{ids['running']}",
        }
        with run_ui_server(db, Path(tmp)) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{server.url}/ui/login")
            page.fill("#api_key", next(iter(KEYS)))
            page.click("button[type=submit]")
            page.wait_for_url("**/ui/overview", wait_until="load")
            for name, path in shots.items():
                page.goto(server.url + path)
                page.wait_for_selector("body[data-rendered=true]", timeout=60_000)
                page.screenshot(path=str(out / name), full_page=name != "runs.png")
                print(f"wrote {out / name}")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
