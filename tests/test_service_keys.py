"""Org API keys on the real SQLite store: hashes only, constant-time checks, revocation seen by
every replica once its cache expires."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence import SQLiteStore
from pipestate.service import keys as keys_module
from pipestate.service.keys import KeyRing, hash_key, parse_key_id
from tests.service_support import sqlite_rows

BOUND = 10.0  # seconds any wait below may take; a refresh takes milliseconds


class FakeClock:
    """A monotonic clock the test moves by hand (cache expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A fresh SQLite store."""
    s = SQLiteStore(tmp_path / "keys.db")
    yield s
    s.close()


class TestKeyRing:
    """Create, authenticate, list and revoke."""

    def test_created_key_authenticates_and_only_its_hash_is_stored(
        self, store: SQLiteStore, tmp_path: Path
    ) -> None:
        """The key works, the store holds its SHA-256 and never the key itself."""
        ring = KeyRing(store)
        record, token = ring.create("acme", name="ci")
        assert token.startswith(f"psk_{record.key_id}_")
        assert ring.authenticate(token) == record
        rows = sqlite_rows(tmp_path / "keys.db", "SELECT * FROM org_api_keys")
        assert [r["key_hash"] for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
        assert all(token not in str(v) for r in rows for v in r.values())
        assert token.encode() not in (tmp_path / "keys.db").read_bytes()

    @pytest.mark.parametrize(
        "mangle",
        [
            lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret, right key id
            lambda t: "psk_0123456789abcdef_" + t.split("_", 2)[2],  # unknown key id
            lambda t: t + "x",  # malformed
            lambda t: "",
            lambda t: "Bearer " + t,
        ],
    )
    def test_wrong_keys_are_refused(self, store: SQLiteStore, mangle: object) -> None:
        """Any change to a key makes it fail."""
        ring = KeyRing(store)
        _, token = ring.create("acme")
        assert ring.authenticate(mangle(token)) is None  # type: ignore[operator]

    def test_hash_is_compared_in_constant_time(
        self, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """authenticate compares digests with hmac.compare_digest, never with ==."""
        calls: list[tuple[str, str]] = []
        real = keys_module.hmac.compare_digest

        def spy(a: str, b: str) -> bool:
            calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
        ring = KeyRing(store)
        record, token = ring.create("acme")
        assert ring.authenticate(token) is not None
        assert calls == [(hash_key(token), record.key_hash)]

    def test_revocation_reaches_another_replica_when_its_cache_expires(
        self, store: SQLiteStore, tmp_path: Path
    ) -> None:
        """Replica B trusts its cached read for cache_ttl only, then sees A's revocation."""
        clock = FakeClock()
        replica_a = KeyRing(store, cache_ttl=2.0, timer=clock)
        other = SQLiteStore(tmp_path / "keys.db")
        try:
            replica_b = KeyRing(other, cache_ttl=2.0, timer=clock)
            record, token = replica_a.create("acme")
            assert replica_b.authenticate(token) is not None
            replica_a.revoke(record.key_id)
            assert replica_a.authenticate(token) is None  # its own revocation: at once
            clock.now += 1.0
            assert replica_b.authenticate(token) is not None  # cached, within the TTL
            clock.now += 1.5
            assert replica_b.authenticate(token) is None
        finally:
            other.close()

    def test_a_key_in_use_is_refreshed_in_the_background_before_it_expires(
        self, store: SQLiteStore
    ) -> None:
        """Past half its TTL, cached() answers at once and a background read renews the entry."""
        clock = FakeClock()
        ring = KeyRing(store, cache_ttl=2.0, timer=clock)
        record, token = ring.create("acme")
        reads: list[str] = []
        select_rows = store.select_rows

        def counted(*args: object, **kwargs: object) -> object:
            reads.append(threading.current_thread().name)
            return select_rows(*args, **kwargs)

        store.select_rows = counted  # type: ignore[method-assign]
        assert ring.cached(token) == (False, None)  # never read: the caller reads it
        assert ring.authenticate(token) == record
        assert reads == ["MainThread"]
        clock.now = 0.5
        assert ring.cached(token) == (True, record)  # fresh: no refresh yet
        assert ring.refreshed(BOUND)
        assert reads == ["MainThread"]
        clock.now = 1.2
        assert ring.cached(token) == (True, record)  # answered from the cache, refresh queued
        assert ring.refreshed(BOUND)
        assert reads == ["MainThread", "pipestate-key-refresh"]
        clock.now = 2.5  # past the first read's expiry, within the refreshed entry's TTL
        assert ring.cached(token) == (True, record)
        clock.now = 3.3  # nobody asked after 1.2: the refreshed entry expired too
        assert ring.cached(token) == (False, None)

    def test_list_and_revoke_are_per_org_and_idempotent(self, store: SQLiteStore) -> None:
        """Listing filters by org; revoking twice keeps the first revocation time."""
        ring = KeyRing(store)
        a, _ = ring.create("acme")
        b, _ = ring.create("globex")
        first = ring.revoke(a.key_id)
        second = ring.revoke(a.key_id)
        assert first is not None
        assert second == first
        assert [k.key_id for k in ring.list("acme")] == [a.key_id]
        assert {k.key_id for k in ring.list()} == {a.key_id, b.key_id}
        assert ring.revoke("0123456789abcdef") is None

    def test_parse_key_id_refuses_anything_but_the_key_format(self) -> None:
        """Only psk_<16 hex>_<43 url-safe chars> is parsed; no store read for the rest."""
        good = "psk_0123456789abcdef_" + "a" * 43
        assert parse_key_id(good) == "0123456789abcdef"
        for bad in (
            good + "\n",
            good.upper(),
            "psk_" + "0" * 16,
            "x" * 500,
            "psk_../../_" + "a" * 43,
        ):
            assert parse_key_id(bad) is None
