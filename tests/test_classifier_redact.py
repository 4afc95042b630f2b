"""Tests for redact(): secrets never leave the classifier."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classifier import redact


class TestRedact:
    """Each processor in the chain masks its kind of secret and leaves prose alone."""

    @pytest.mark.parametrize(
        ("text", "secret", "kept"),
        [
            ("postgres://user:s3cret@db:5432/app", "s3cret", "postgres://user:***@db"),
            ("mysql+pymysql://etl:hunter2@10.0.0.5/shop", "hunter2", "etl:***@"),
            ("Authorization: Bearer eyJhbGciOi.abc.def", "eyJhbGciOi", "Bearer ***"),
            ("{'Authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz", "Basic ***"),
            ("X-API-Key: 9f8e7d6c5b4a", "9f8e7d6c5b4a", "X-API-Key: ***"),
            ("x-goog-api-key=AIzaSyA-1234567890abcdefghijklmnopqrstu", "AIzaSyA", "***"),
            ("GET /v1?key=abc123&limit=5", "abc123", "limit=5"),
            ("GET /v1?token=abc123", "abc123", "token=***"),
            ("host=db password=hunter2 user=etl", "hunter2", "user=etl"),
            ('{"password": "hunter2", "user": "etl"}', "hunter2", '"user": "etl"'),
            ("client_secret=shhh-123", "shhh-123", "client_secret=***"),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "wJalrXUtnFEMI",
                "aws_secret_access_key",
            ),
            ("creds AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "creds *** used"),
            ("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here", "wJalrXUtnFEMI", "here"),
        ],
    )
    def test_masks_secret(self, text: str, secret: str, kept: str) -> None:
        """The secret is gone and the surrounding text is kept."""
        out = redact(text)
        assert secret not in out
        assert kept in out

    def test_private_key_block(self) -> None:
        """The body of a PEM private key is removed, markers kept."""
        text = (
            "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAKCAQ\n-----END RSA PRIVATE KEY-----\n"
        )
        out = redact(text)
        assert "MIIEow" not in out
        assert "-----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----" in out

    def test_truncated_private_key(self) -> None:
        """A key block cut off before its END marker is removed to the end of the text."""
        out = redact("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq")
        assert "MIIEvQ" not in out

    @pytest.mark.parametrize(
        "text",
        [
            "Unexpected token: } in JSON at position 4",
            "commit 3f786850e387550fdab836ed7e6dc881de23001b",
            "DETAIL:  Key (email)=(a@b.c) already exists.",
            "Read timed out. (read timeout=30)",
            "403 Exceeded rate limits: too many table update operations for this table",
        ],
    )
    def test_leaves_ordinary_text_alone(self, text: str) -> None:
        """Messages without secrets come out unchanged."""
        assert redact(text) == text

    def test_non_string_input(self) -> None:
        """bytes and None do not raise."""
        assert "s3cret" not in redact(b"postgres://u:s3cret@h/db")  # type: ignore[arg-type]
        assert redact(None) == ""  # type: ignore[arg-type]

    @given(st.text(max_size=400))
    def test_never_raises_and_is_idempotent(self, text: str) -> None:
        """Invariant: redact returns a str for any text, and redacting twice changes nothing."""
        once = redact(text)
        assert isinstance(once, str)
        assert redact(once) == once

    @given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=30))
    def test_dsn_password_never_survives(self, password: str) -> None:
        """Invariant: whatever the password, it does not appear after the DSN is redacted."""
        out = redact(f"could not connect: postgresql://etl:{password}@db.internal:5432/warehouse")
        assert f":{password}@" not in out
