"""Tests for redact(): secrets never leave the classifier."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import redact
from classifier.redact import PROCESSORS


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

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(st.text(max_size=400))
    def test_never_raises_and_is_idempotent(self, text: str) -> None:
        """Invariant: redact returns a str for any text, and redacting twice changes nothing."""
        once = redact(text)
        assert isinstance(once, str)
        assert redact(once) == once

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=30))
    def test_dsn_password_never_survives(self, password: str) -> None:
        """Invariant: whatever the password, it does not appear after the DSN is redacted."""
        out = redact(f"could not connect: postgresql://etl:{password}@db.internal:5432/warehouse")
        assert f":{password}@" not in out


# One sample per processor: a secret that this processor alone masks. Removing the processor
# from the chain must leak the secret, so a rule that silently stops matching fails a test.
ONLY_THIS_RULE: dict[str, tuple[str, str]] = {
    "redact_private_keys": (
        "key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nu\n-----END EC PRIVATE KEY-----",
        "MHcCAQEEIBkg4LVWM9nu",
    ),
    "redact_url_passwords": ("could not connect to redis://:p4ssw0rd@cache:6379/0", "p4ssw0rd"),
    "redact_auth_headers": ("headers={'Authorization': 'Negotiate YIIGhgYGKwYB'}", "YIIGhgYGKwYB"),
    "redact_key_headers": ("X-Vault-Token: hvs.CAESIJ1x2y3z", "hvs.CAESIJ1x2y3z"),
    "redact_bearer_tokens": ("got token Bearer abc123def456 in body", "abc123def456"),
    "redact_secret_params": ("connect(host=db, passwd=hunter22)", "hunter22"),
    "redact_short_params": ("GET /download?sig=Zm9vYmFy9&expires=99", "Zm9vYmFy9"),
    "redact_aws_key_ids": ("assumed ASIAY34FZKBOKMUTVV7A ok", "ASIAY34FZKBOKMUTVV7A"),
    "redact_aws_secrets": (
        "leaked wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here",
        "wJalrXUtnFEMI/K7MDENG",
    ),
    "redact_vendor_tokens": ("slack said xoxb-1234567890-abcdefghij", "xoxb-1234567890"),
}


class TestEveryRuleIsNeeded:
    """Each redaction rule has a sample that only it masks, so none can silently stop working."""

    def test_every_processor_has_a_sample(self) -> None:
        """The samples cover exactly the processors in the chain."""
        assert set(ONLY_THIS_RULE) == {p.__name__ for p in PROCESSORS}

    @pytest.mark.parametrize("name", list(ONLY_THIS_RULE))
    def test_only_this_rule_masks_its_sample(self, name: str) -> None:
        """The full chain masks the sample; the chain without this processor leaks it."""
        text, secret = ONLY_THIS_RULE[name]
        others = [p for p in PROCESSORS if p.__name__ != name]
        assert secret not in redact(text)
        assert secret in redact(text, others)


class TestDiagnosisIsNotASecret:
    """Issue 10 item 8: a validator's wording after 'field:' is prose, not the field's value."""

    @pytest.mark.parametrize(
        "text",
        [
            "pipeline.yml: steps[0].config.password: expected a string, got 5",
            "config error: credentials: expected a mapping, got 'x'",
            "api_key: expected a string (got None)",
            "client_secret: missing",
            "token.secret: must not be empty",
            "X-API-Key: is required",
        ],
    )
    def test_diagnosis_after_secret_name_is_kept(self, text: str) -> None:
        """'<secret name>: expected ...' comes out unchanged."""
        assert redact(text) == text

    @pytest.mark.parametrize(
        ("text", "secret"),
        [
            ("password: hunter2", "hunter2"),
            ("password: expected7", "expected7"),
            ('{"password": "expected"}', "expected"),
            ("password=expected", "expected"),
            ("api_key: 'is'", "is'"),
        ],
    )
    def test_values_are_still_masked(self, text: str, secret: str) -> None:
        """A real value (or any quoted or '=' value) after the name is still masked."""
        assert secret not in redact(text).split(":", 1)[-1].split("=", 1)[-1]


class TestPathsAreNotAwsSecrets:
    """A 40-character run of path characters is a file name, not an AWS secret access key."""

    def test_lowercase_absolute_path_of_forty_characters_is_kept(self) -> None:
        """The config path of a CI checkout survives (it once hid the file name in a message)."""
        text = "/tmp/fresh1/configs/test/validation/test_bad_field.yml: steps[1]: bad"
        assert redact(text) == text

    def test_a_secret_with_slashes_is_still_masked(self) -> None:
        """AWS's documented example secret (capitals, digits, slashes) is masked."""
        assert "wJalrXUtnFEMI" not in redact("key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end")


class TestAwsSecretShapes:
    """Which 40-character runs _mask_if_secret_like masks (each clause has its own case)."""

    @pytest.mark.parametrize(
        "token",
        [
            "wJalrXUtnFEMIK7MDENGbPxRfiCY1EXAMPLEKEY2",  # mixed case and digits, no / or +
            "abcdefghij+klmnopqrstuvwxyzabcdefghijklm",  # lower case with a plus
            "abcdefghij/klmnopqrstuvwxyzabcdefghijklm",  # lower case with a slash inside
        ],
    )
    def test_random_looking_runs_are_masked(self, token: str) -> None:
        """A run with mixed case and digits, or with '/' or '+', is a secret."""
        assert len(token) == 40
        assert token not in redact(f"aws_secret {token} end")

    def test_plain_lower_case_word_run_is_kept(self) -> None:
        """Forty lower-case letters with no digit, '/' or '+' are not a secret."""
        token = "abcdefghijklmnopqrstuvwxyzabcdefghijklmn"
        assert token in redact(f"column {token} end")

    def test_undecodable_bytes_are_redacted_not_rejected(self) -> None:
        """Bytes that are not UTF-8 are decoded leniently and still masked."""
        out = redact(b"\xff\xfe password=hunter2 end")  # type: ignore[arg-type]
        assert "hunter2" not in out
        assert out.endswith("end")


class TestExactShapes:
    """What survives around each mask: the context a reader needs, and nothing of the secret."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("got token Bearer abc123def456 in body", "got token Bearer *** in body"),
            ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer ***"),
            ("Authorization: abcdef123456", "Authorization: ***"),
            ("authorization=abcdef123456", "authorization=***"),
            ("GET /x?token=abc123&y=1", "GET /x?token=***&y=1"),
            ("-----BEGIN PRIVATE KEY-----\nMIIEabc", "-----BEGIN PRIVATE KEY-----***"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY----- tail",
                "-----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY----- tail",
            ),
        ],
    )
    def test_exact_output(self, text: str, expected: str) -> None:
        """The header name, scheme word, parameter name and PEM armour are kept verbatim."""
        assert redact(text) == expected
