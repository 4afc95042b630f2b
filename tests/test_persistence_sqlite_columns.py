"""persistence.stores._sqlite_columns: a column's metadata texts are metadata_json's, one by one."""

from __future__ import annotations

import decimal
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import persistence.stores._sqlite_columns as sqlite_columns
from persistence.stores._sqlite_columns import metadata_json, metadata_texts

# Values that stress the cut between dicts: the separator itself inside strings, dicts nested in
# lists (whose text holds it too), empty dicts, and values plain JSON refuses.
_TRICKY = st.sampled_from(["}, {", "{", "}", ", ", '"}, {"', "\u00e9", "\ud800"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    _TRICKY,
)
_JSONISH = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=4), _TRICKY), inner, max_size=3),
    ),
    max_leaves=8,
)
_METADATA = st.dictionaries(st.one_of(st.text(max_size=5), _TRICKY), _JSONISH, max_size=4)
_ODD = st.sampled_from(
    [{1: "int key"}, {"set": {1, 2}}, {"d": decimal.Decimal("1.5")}, [1, 2], "text"]
)


class TestMetadataTexts:
    """metadata_texts of a column: metadata_json of each value, in order."""

    @settings(max_examples=300, deadline=None)
    @given(values=st.lists(st.one_of(_METADATA, _METADATA, _ODD), min_size=1, max_size=12))
    def test_a_column_gets_each_values_own_text(self, values: list[Any]) -> None:
        """Invariant: for any column of metadata (dicts holding the separator, nested dicts,
        NaN, non-JSON values, non-dicts), the texts are metadata_json's of each value."""
        expected = [metadata_json(value) for value in values]
        assert metadata_texts(values) == expected
        assert metadata_texts(tuple(values)) == expected

    def test_executor_metadata_is_cut_at_every_dict(self) -> None:
        """A column of the executor's step metadata, and of empty dicts, comes back whole."""
        column = [{"step_type": "generic.noop", "step_index": i} for i in range(40)] + [{}, {}]
        texts = metadata_texts(column)
        assert texts[3] == '{"step_index": 3, "step_type": "generic.noop"}'
        assert texts == [metadata_json(value) for value in column]
        assert metadata_texts([]) == []

    def test_a_column_with_an_empty_dict_is_encoded_value_by_value(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An empty dict in the column: no array is encoded (metadata_json's "{}" is cheaper)."""
        calls: list[Any] = []

        def counting(value: Any) -> str:
            calls.append(value)
            return json.dumps(value, sort_keys=True, ensure_ascii=False)

        monkeypatch.setattr(sqlite_columns, "plain_json", counting)
        column = [{}, {"a": 1}, {}]
        assert metadata_texts(column) == ["{}", '{"a": 1}', "{}"]
        assert calls == [{"a": 1}]
        calls.clear()
        assert metadata_texts(column[1:2] * 2) == ['{"a": 1}'] * 2
        assert len(calls) == 1  # the whole column as one array
