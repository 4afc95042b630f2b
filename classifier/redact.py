"""Remove secrets from error text before it leaves the classifier.

redact() runs a chain of small processors (structlog style): each takes the text and returns
it with one kind of secret replaced by ``***``. Order matters only where one secret can hide
inside another (a private-key block before the generic base64 AWS-secret rule).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from classifier._lazyre import lazy

MASK = "***"

Processor = Callable[[str], str]

_PRIVATE_KEY = lazy(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY( BLOCK|)-----"
    r"(?:.*?(-----END \1PRIVATE KEY\2-----)|.*\Z)",
    re.DOTALL,
)
# Words a validator writes after "field: " ("password: expected a string, got int"). Without
# this guard the unquoted "name: value" form read the first word of the diagnosis as the secret
# (issue 10 item 8: "expected" was masked). A quoted value is always masked.
_DIAGNOSIS_WORDS = (
    r"expected|expecting|must|should|got|is|are|was|were|missing|required|invalid|not|none|null|"
    r"cannot|can't|unknown|empty|wrong|unexpected|may|does|did|has|field|value|type|too|only"
)
# The separator after a secret's name: "=" always introduces a value, and so does a quote; a
# bare colon is followed by a value only if what follows is not a validator's diagnosis.
_SEPARATOR = rf"(?:\s*=\s*['\"]?|\s*:\s*['\"]|\s*:\s*(?!(?:{_DIAGNOSIS_WORDS})(?![\w'-])))"
# Header names whose value is a credential (Authorization keeps its scheme word).
_AUTH_HEADER = lazy(
    r"(?i)(\b(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
    r"(?:(bearer|basic|digest|token|negotiate|aws4-hmac-sha256|gsn|otp)\s+)?"
    r"([^\s'\",;}]+(?:[ \t]*,[ \t]*[a-z]+=[^\s'\",;}]+)*)"
)
_KEY_HEADER = lazy(
    r"(?i)(\b(?:x-)?(?:api|goog-api|auth|access|amz-security|amz|vault|csrf|session|private)"
    rf"[-_](?:key|token|secret|signature|security-token)['\"]?{_SEPARATOR})([^\s'\",;&}}]+)"
)
_BEARER = lazy(r"(?i)\b(bearer\s+)[a-z0-9\-._~+/]+=*")
# key=value / "key": "value" pairs whose name marks a secret.
_SECRET_PARAM = lazy(
    r"(?i)(\b[\w.-]*?(?:password|passwd|pwd|passphrase|secret_?access_?key|secret|api_?key|apikey|"
    r"access_?token|refresh_?token|id_?token|auth_?token|session_?token|client_?secret|"
    rf"private_?key|credentials?)['\"]?{_SEPARATOR})"
    r"([^\s'\",;&}]+)"
)
# Short names are only secrets in key=value form ("Unexpected token: }" is not a secret).
_SHORT_PARAM = lazy(r"(?i)([?&;\s,(]|^)((?:token|key|sig|signature|auth)=)([^\s&;,'\")]+)")
_URL_USERINFO = lazy(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^:/@\s'\"]*:)([^@\s/'\"]+)(@)")
_AWS_ACCESS_KEY_ID = lazy(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b")
_AWS_SECRET = lazy(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_VENDOR_TOKEN = lazy(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z\-_]{35}|sk-[A-Za-z0-9_\-]{20,}|ya29\.[0-9A-Za-z\-_.]+"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+)"
)


def redact_private_keys(text: str) -> str:
    """Replace the body of PEM private-key blocks (also a truncated block running to the end)."""
    return _PRIVATE_KEY.sub(
        lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY{m.group(2)}-----{MASK}{m.group(3) or ''}",
        text,
    )


def redact_auth_headers(text: str) -> str:
    """Mask Authorization header values, keeping the scheme word (Bearer, Basic, ...)."""
    return _AUTH_HEADER.sub(
        lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{MASK}", text
    )


def redact_key_headers(text: str) -> str:
    """Mask X-API-Key / X-Auth-Token / X-Amz-Security-Token style header values."""
    return _KEY_HEADER.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact_bearer_tokens(text: str) -> str:
    """Mask any 'Bearer <token>' left outside an Authorization header."""
    return _BEARER.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact_url_passwords(text: str) -> str:
    """Mask the password of user:password@host in URLs and DSNs (postgres://u:***@h)."""
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)


def redact_secret_params(text: str) -> str:
    """Mask password= / secret= / api_key= style parameters and JSON fields."""
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact_short_params(text: str) -> str:
    """Mask token= / key= / sig= / auth= query parameters (only in key=value form)."""
    return _SHORT_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def redact_aws_key_ids(text: str) -> str:
    """Mask AWS access key ids (AKIA..., ASIA...)."""
    return _AWS_ACCESS_KEY_ID.sub(MASK, text)


def redact_aws_secrets(text: str) -> str:
    """Mask 40-character AWS secret access keys that look random (not hex digests or words)."""
    return _AWS_SECRET.sub(_mask_if_secret_like, text)


def _mask_if_secret_like(match: re.Match[str]) -> str:
    """Mask a 40-char base64 run only if it looks random, not like a hex digest, word or path.

    An absolute path with no capital letter (/tmp/ci/configs/test/...) is a file name, not a key:
    a random 40-character secret starting with '/' and free of capitals is about one in 10^5.
    """
    token = match.group(0)
    mixed = (
        any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() for c in token)
    )
    if token.startswith("/") and not any(c.isupper() for c in token):
        return token
    return MASK if mixed or "/" in token or "+" in token else token


def redact_vendor_tokens(text: str) -> str:
    """Mask well-known token shapes: GitHub, Slack, Google API keys, OAuth ya29, JWTs."""
    return _VENDOR_TOKEN.sub(MASK, text)


PROCESSORS: Sequence[Processor] = (
    redact_private_keys,
    redact_url_passwords,
    redact_auth_headers,
    redact_key_headers,
    redact_bearer_tokens,
    redact_secret_params,
    redact_short_params,
    redact_aws_key_ids,
    redact_aws_secrets,
    redact_vendor_tokens,
)


def redact(text: str, processors: Sequence[Processor] = PROCESSORS) -> str:
    """Return text with every recognised secret replaced by '***'; never raises."""
    if not isinstance(text, str):
        text = "" if text is None else _to_text(text)
    for processor in processors:
        text = processor(text)
    return text


def _to_text(value: object) -> str:
    """Best-effort str() for redact() callers that pass bytes or other objects."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
