"""Browser sessions: an org API key entered once becomes a signed, expiring cookie.

The cookie holds only the org slug and a timestamp, signed with itsdangerous (HMAC-SHA1 over a
key derived from the secret); it is HttpOnly, SameSite=Strict, scoped to the UI's path, Secure
when the request came over HTTPS, and refused after `max_age_seconds`. The API key itself is
never stored in the browser or logged.
"""

from __future__ import annotations

import os
import secrets

import attrs
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "pipestate_session"
SECRET_ENV = "PIPESTATE_UI_SECRET"
_SALT = "pipestate.ui.session"


def default_secret() -> str:
    """$PIPESTATE_UI_SECRET, else a random per-process secret (sessions end at restart)."""
    return os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32)


@attrs.frozen
class SessionSigner:
    """Signs and checks session cookies for one secret and lifetime."""

    secret: str = attrs.field(repr=False)
    max_age_seconds: int = 8 * 3600

    def __attrs_post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError(
                f"the UI session secret must be at least 16 characters (got {len(self.secret)})."
            )
        if self.max_age_seconds <= 0:
            raise ValueError(f"max_age_seconds must be > 0 (got {self.max_age_seconds!r}).")

    @property
    def _serializer(self) -> URLSafeTimedSerializer:
        """The itsdangerous serializer for this secret."""
        return URLSafeTimedSerializer(self.secret, salt=_SALT)

    def issue(self, org: str, subject: str | None = None) -> str:
        """A signed, timestamped token naming the org (and the key id it was opened with)."""
        return str(self._serializer.dumps({"org": org, "sub": subject}))

    def session_of(self, token: str | None) -> tuple[str, str | None] | None:
        """(org, subject) of a valid, unexpired token; None for anything else."""
        if not token:
            return None
        try:
            payload = self._serializer.loads(token, max_age=self.max_age_seconds)
        except BadSignature:  # also SignatureExpired, a subclass
            return None
        if not isinstance(payload, dict):
            return None
        org, subject = payload.get("org"), payload.get("sub")
        if not isinstance(org, str) or not org:
            return None
        return org, subject if isinstance(subject, str) else None

    def org_of(self, token: str | None) -> str | None:
        """The org a valid, unexpired token names; None for anything else."""
        session = self.session_of(token)
        return None if session is None else session[0]
