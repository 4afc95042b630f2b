"""Org API keys: high-entropy tokens, stored only as SHA-256 hashes in the audit store.

A key reads `psk_<key_id>_<secret>`: `psk_<key_id>` is its visible prefix (safe to show and log),
the secret is 256 bits from the secrets module. The store keeps, per key, a CREATED row (key id,
org, prefix, hash, label, time) and, once revoked, a REVOKED row: rows are only appended, so the
same table works on SQLite and on BigQuery (where streamed rows cannot be updated), and every
replica sees a key and its revocation. A replica caches what it read for `cache_ttl` seconds
(default 2 s), so a revoked key stops working everywhere within that time. A key in use is read
again in the background once half its time in the cache has passed (refresh-ahead), so a steady
client's requests never wait for that read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
from cachetools import TTLCache

from persistence.stores.base import API_KEYS, StoreError

KEY_PREFIX = "psk_"
KEY_RE = re.compile(r"^psk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})\Z")
MAX_KEY_LENGTH = 128
CREATED, REVOKED = "CREATED", "REVOKED"
DEFAULT_CACHE_TTL = 2.0
_CACHE_SIZE = 10_000
_log = logging.getLogger("pipestate.service")


@attrs.frozen(kw_only=True)
class ApiKey:
    """What the store knows about one key (never the key itself)."""

    key_id: str
    org_slug: str
    key_prefix: str
    key_hash: str = attrs.field(repr=False)
    name: str | None = None
    created_at: str | None = None
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        """True until the key is revoked."""
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        """The fields an API response may show (no hash)."""
        return {
            "key_id": self.key_id,
            "org_slug": self.org_slug,
            "key_prefix": self.key_prefix,
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "active": self.active,
        }


def hash_key(token: str) -> str:
    """SHA-256 hex digest of a whole key (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh (key_id, token) pair."""
    key_id = secrets.token_hex(8)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_key_id(token: str) -> str | None:
    """The key id inside a well-formed key, else None (no store read for malformed keys)."""
    if not isinstance(token, str) or len(token) > MAX_KEY_LENGTH:
        return None
    match = KEY_RE.match(token)
    return match.group(1) if match else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _text(value: Any) -> str | None:
    """Timestamps as ISO text whichever store returned them."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return stamp.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return str(value)


def _fold(rows: list[dict[str, Any]]) -> list[ApiKey]:
    """Combine CREATED and REVOKED rows into one ApiKey per key id."""
    created: dict[str, dict[str, Any]] = {}
    revoked: dict[str, Any] = {}
    for row in rows:
        if row.get("event_type") == CREATED:
            created[str(row["key_id"])] = row
        elif row.get("event_type") == REVOKED:
            revoked[str(row["key_id"])] = row.get("event_time")
    keys = [
        ApiKey(
            key_id=key_id,
            org_slug=str(row["org_slug"]),
            key_prefix=str(row.get("key_prefix") or ""),
            key_hash=str(row.get("key_hash") or ""),
            name=row.get("name"),
            created_at=_text(row.get("event_time")),
            revoked_at=_text(revoked.get(key_id)),
        )
        for key_id, row in created.items()
    ]
    return sorted(keys, key=lambda k: (k.created_at or "", k.key_id))


class KeyRing:
    """Creates, lists, revokes and checks org keys on a store with select_rows/write_batch.

    Store calls are synchronous (run them in a thread from async code). Keys are written to the
    remote itself, not through an outbox, so a created key works on every replica at once.
    """

    def __init__(
        self,
        store: Any,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._writer = getattr(store, "remote", store)
        self._cache: TTLCache[str, ApiKey | None] = TTLCache(
            _CACHE_SIZE, ttl=cache_ttl, timer=timer
        )
        self._timer = timer
        self._refresh_after = cache_ttl / 2
        self._fetched: dict[str, float] = {}  # key id -> when it was read (timer)
        self._refreshing: set[str] = set()
        self._refreshes: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._refresher: threading.Thread | None = None
        self._idle = threading.Event()  # set while no background refresh is queued or running
        self._idle.set()
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()

    def _write(self, row: dict[str, Any]) -> None:
        result = self._writer.write_batch(API_KEYS, [row])
        if result.rejected:
            raise StoreError(f"key row refused: {result.rejected[0].message}", retryable=False)

    def _row(self, key_id: str, org_slug: str, event: str, **extra: Any) -> dict[str, Any]:
        now = _now()
        return {
            "event_id": f"{key_id}:{event}",
            "key_id": key_id,
            "org_slug": org_slug,
            "event_type": event,
            "event_time": now,
            "event_date": now.date(),
            **extra,
        }

    def create(
        self, org_slug: str, *, name: str | None = None, actor: str = "api"
    ) -> tuple[ApiKey, str]:
        """Create a key for an org; return its record and the key itself (shown once)."""
        key_id, token = new_token()
        prefix = f"{KEY_PREFIX}{key_id}"
        digest = hash_key(token)
        row = self._row(
            key_id, org_slug, CREATED, key_prefix=prefix, key_hash=digest, name=name, actor=actor
        )
        self._write(row)
        record = ApiKey(
            key_id=key_id,
            org_slug=org_slug,
            key_prefix=prefix,
            key_hash=digest,
            name=name,
            created_at=_text(row["event_time"]),
        )
        return record, token

    def get(self, key_id: str, *, fresh: bool = False) -> ApiKey | None:
        """The key with this id (cached for cache_ttl unless fresh), or None."""
        if not fresh:
            with self._lock:
                if key_id in self._cache:
                    return self._cache[key_id]
        # One store read at a time: requests that miss together wait for it, then hit the
        # cache (a cold replica under load would otherwise send one query per request).
        with self._fetch_lock:
            if not fresh:
                with self._lock:
                    if key_id in self._cache:
                        return self._cache[key_id]
            read_at = self._timer()
            keys = _fold(self.store.select_rows(API_KEYS, {"key_id": key_id}, limit=10))
            found = keys[0] if keys else None
            with self._lock:
                self._cache[key_id] = found
                self._fetched[key_id] = read_at
                if len(self._fetched) > _CACHE_SIZE:  # ids the cache evicted or expired
                    self._fetched = {k: self._fetched[k] for k in self._cache if k in self._fetched}
        return found

    def list(self, org_slug: str | None = None) -> list[ApiKey]:
        """Every key (of one org, when given), oldest first; never cached."""
        where = {} if org_slug is None else {"org_slug": org_slug}
        return _fold(self.store.select_rows(API_KEYS, where, limit=100_000))

    def revoke(self, key_id: str, *, actor: str = "api") -> ApiKey | None:
        """Revoke a key (idempotent); None if no such key."""
        key = self.get(key_id, fresh=True)
        if key is None:
            return None
        if key.active:
            row = self._row(key_id, key.org_slug, REVOKED, actor=actor)
            self._write(row)
            key = attrs.evolve(key, revoked_at=_text(row["event_time"]))
        with self._lock:
            self._cache[key_id] = key
            self._fetched[key_id] = self._timer()
        return key

    def cached(self, token: str) -> tuple[bool, ApiKey | None]:
        """(True, key or None) when the cache can answer for `token` without the store."""
        key_id = parse_key_id(token)
        if key_id is None:
            return True, None
        with self._lock:
            if key_id not in self._cache:
                return False, None
            key = self._cache[key_id]
            if self._timer() - self._fetched.get(key_id, 0.0) >= self._refresh_after:
                self._refresh_soon(key_id)
        return True, self._check(token, key)

    def _refresh_soon(self, key_id: str) -> None:
        """Queue a background read of a cached key (under self._lock; once per key at a time).

        The request that noticed the entry is half-way to expiry is answered from it; the read
        runs on one daemon thread, so the entry is fresh again before it would have expired.
        """
        if key_id in self._refreshing:
            return
        self._refreshing.add(key_id)
        self._idle.clear()
        self._refreshes.put(key_id)
        if self._refresher is None or not self._refresher.is_alive():
            self._refresher = threading.Thread(
                target=self._refresh_loop, name="pipestate-key-refresh", daemon=True
            )
            self._refresher.start()

    def _refresh_loop(self) -> None:
        while True:
            key_id = self._refreshes.get()
            try:
                self.get(key_id, fresh=True)
            except Exception as exc:  # the entry expires; the next request reads and reports
                _log.warning("key refresh failed: %s", type(exc).__name__)
            finally:
                with self._lock:
                    self._refreshing.discard(key_id)
                    if not self._refreshing:
                        self._idle.set()

    def refreshed(self, timeout: float) -> bool:
        """Wait (bounded) until no background refresh is queued or running; False on timeout."""
        return self._idle.wait(timeout)

    def _check(self, token: str, key: ApiKey | None) -> ApiKey | None:
        if key is None or not key.active:
            return None
        if not hmac.compare_digest(hash_key(token), key.key_hash):
            return None
        return key

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key `token` is, or None; the hash is compared in constant time."""
        key_id = parse_key_id(token)
        if key_id is None:
            return None
        return self._check(token, self.get(key_id))
