"""persistence._rows: the fast paths of the row builders give what the general paths give."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from persistence._rows import merged_metadata, utc
from statemachine.records import dumps_metadata
from tests.strategies.hostile import hostile_metadata

_contexts = st.none() | st.fixed_dictionaries(
    {"error_type": st.sampled_from(["TRANSIENT", "PERMANENT"]), "retry_count": st.integers(0, 9)}
)


class TestMergedMetadata:
    """merged_metadata is dumps_metadata of the merged dict, whatever the metadata holds."""

    @settings(max_examples=150, deadline=None)
    @given(metadata=hostile_metadata() | st.none(), context=_contexts)
    def test_same_text_as_dumps_metadata(
        self, metadata: dict[Any, Any] | None, context: dict[str, Any] | None
    ) -> None:
        """Invariant: the fast path (empty, plain JSON) and the fallback agree with
        dumps_metadata on the merged dict for any metadata, hostile values included."""
        merged = dict(metadata or {})
        if context is not None:
            merged["error_context"] = context
        assert merged_metadata(metadata, context) == dumps_metadata(merged)

    def test_plain_metadata_sorted_and_unicode_kept(self) -> None:
        """Plain metadata comes out with sorted keys, non-ASCII text kept, error_context added."""
        text = merged_metadata({"b": "é", "a": 1}, {"error_type": "TRANSIENT"})
        assert text == '{"a": 1, "b": "é", "error_context": {"error_type": "TRANSIENT"}}'


class TestUtc:
    """utc() returns the same instant as an aware UTC datetime."""

    def test_utc_passes_through_and_converts(self) -> None:
        """A UTC value is returned as is; other zones convert; a naive value is taken as UTC."""
        now = dt.datetime.now(dt.UTC)
        assert utc(now) is now
        plus_two = now.astimezone(dt.timezone(dt.timedelta(hours=2)))
        assert utc(plus_two) == now
        assert utc(plus_two).tzinfo is dt.UTC
        naive = now.replace(tzinfo=None)
        assert utc(naive) == now
