"""Notifications: Apprise JSON webhooks to a real receiver, no secret in logs, failures counted."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import pytest

from persistence.stores.sqlite import SQLiteStore
from persistence.watch.notify import Notifier, channel_label, url_secrets
from persistence.watch.rules import AlertConfig, PermanentFailureRule
from persistence.watch.watcher import Watcher
from statemachine import ManualClock
from tests.bq_emulator import free_port
from tests.watch_support import NOW, Runs, receiver

TOKEN = "s3cr3t-T0ken-abcdef"


class TestDelivery:
    """Messages reach a real HTTP receiver in Apprise's JSON payload."""

    def test_json_payload(self) -> None:
        """title, message and type arrive as Apprise's json:// scheme posts them."""
        with receiver() as (state, port):
            notifier = Notifier([f"json://127.0.0.1:{port}/hook/{TOKEN}"])
            notifier.notify("[pipestate] FIRED critical: p", "run r failed PERMANENT", "FIRED")
            assert notifier.flush(10)
            assert state.wait_for(1)
            notifier.close()
        (body,) = state.bodies
        assert body["title"] == "[pipestate] FIRED critical: p"
        assert body["message"] == "run r failed PERMANENT"
        assert body["type"] == "failure"
        assert body["version"] == "1.0"
        assert state.paths == [f"/hook/{TOKEN}"]
        assert notifier.counts["sent"] == 1

    def test_messages_are_redacted(self) -> None:
        """A secret in the text is redacted before it leaves the process."""
        with receiver() as (state, port):
            notifier = Notifier([f"json://127.0.0.1:{port}/hook"])
            notifier.notify("t", "connect failed: password=hunter2", "FIRED")
            assert notifier.flush(10)
            assert state.wait_for(1)
            notifier.close()
        assert "hunter2" not in state.bodies[0]["message"]

    def test_token_never_logged(
        self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With DEBUG logging on and a failing receiver, the URL's token appears in no log."""
        caplog.set_level(logging.DEBUG)
        with receiver(status=500) as (state, port):
            notifier = Notifier(
                [f"json://user:{TOKEN}@127.0.0.1:{port}/hook/{TOKEN}"],
                attempts=2,
                retry_wait_seconds=0.01,
            )
            notifier.notify("t", "m", "FIRED")
            assert notifier.flush(10)
            notifier.close()
        assert len(state.bodies) == 2
        assert notifier.counts["failed"] == 1
        captured = capsys.readouterr()
        assert TOKEN not in caplog.text
        assert TOKEN not in captured.out + captured.err
        assert "json#1" in captured.out + captured.err

    def test_labels_and_secrets(self) -> None:
        """Channels are named by scheme and position; user, password, path and query are secret."""
        url = "slack://TokenA/TokenB/TokenC/#ops?footer=no&key=abcdef"
        assert channel_label(url, 2) == "slack#2"
        assert {"TokenB", "TokenC", "abcdef"} <= url_secrets(url)

    def test_bad_url_is_a_clear_error(self) -> None:
        """An unusable Apprise URL is refused at construction, named without its text."""
        with pytest.raises(ValueError, match=r"channel nope#1: not a valid Apprise URL") as info:
            Notifier([f"nope://{TOKEN}"])
        assert TOKEN not in str(info.value)


class TestUnreachable:
    """A receiver that is down is retried and counted, and never blocks the watcher."""

    def test_retried_counted_not_blocking(self, tmp_path: Path) -> None:
        """notify() returns at once; the worker retries, then counts one failure."""
        port = free_port()  # nothing listens there
        notifier = Notifier([f"json://127.0.0.1:{port}/x"], attempts=3, retry_wait_seconds=0.01)
        started = time.perf_counter()
        for _ in range(5):
            notifier.notify("t", "m", "FIRED")
        assert time.perf_counter() - started < 0.5  # enqueueing, not sending
        assert notifier.flush(30)
        notifier.close()
        assert notifier.counts["failed"] == 5
        assert notifier.counts["retried"] == 10
        assert notifier.counts["sent"] == 0

    def test_watcher_cycle_with_dead_channel(self, tmp_path: Path) -> None:
        """A watcher cycle fires and records its alert though the only webhook is down."""
        store = SQLiteStore(tmp_path / "a.db")
        runs = Runs()
        runs.add("bill", NOW, "billing", "PENDING", "RUNNING")
        runs.add("bill", NOW, "billing", "RUNNING", "FAILED", error_type="PERMANENT")
        runs.write(store)
        config = AlertConfig(rules=(PermanentFailureRule(name="p"),))
        notifier = Notifier(
            [f"json://127.0.0.1:{free_port()}/x"], attempts=2, retry_wait_seconds=0.01
        )
        clock = ManualClock(start=NOW + dt.timedelta(minutes=1))
        watcher = Watcher(store, config=config, notifier=notifier, recover=False, clock=clock)
        report = watcher.cycle()
        assert [e.event for e in report.events] == ["FIRED"]
        assert report.errors == ()
        watcher.stop()
        assert notifier.counts["failed"] == 1
