"""Signed session cookies: they name one org, cannot be forged and expire."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner

from pipestate.ui._session import SessionSigner

SECRET = "s" * 32


class TestSessionSigner:
    """issue() and org_of() round-trip; anything else is refused."""

    def test_round_trip(self) -> None:
        """A token issued for an org names that org."""
        signer = SessionSigner(SECRET)
        assert signer.org_of(signer.issue("acme")) == "acme"

    def test_forged_or_foreign_tokens_are_refused(self) -> None:
        """A changed payload, another secret's token, garbage and nothing all name no org."""
        signer = SessionSigner(SECRET)
        token = signer.issue("acme")
        payload, rest = token.split(".", 1)
        forged = SessionSigner("t" * 32).issue("globex").split(".", 1)[0] + "." + rest
        assert signer.org_of(forged) is None
        assert signer.org_of(SessionSigner("t" * 32).issue("acme")) is None
        assert signer.org_of(payload) is None
        assert signer.org_of("") is None
        assert signer.org_of(None) is None

    def test_expired_token_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A token older than max_age names no org."""
        signer = SessionSigner(SECRET, max_age_seconds=60)
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 61)
        old = signer.issue("acme")
        monkeypatch.undo()
        assert signer.org_of(old) is None
        assert signer.org_of(signer.issue("acme")) == "acme"

    def test_weak_secret_is_rejected(self) -> None:
        """A short secret is refused at construction, naming the length."""
        with pytest.raises(ValueError, match="at least 16 characters"):
            SessionSigner("short")
