"""persistence._json_text: the C encoder built once writes json.dumps's text, or refuses."""

from __future__ import annotations

import json
import math
import platform
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence._json_text import plain_json

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="CPython's _json")
def test_cpython_gets_the_fast_encoder() -> None:
    """On CPython the prebuilt C encoder is in use (a silent fallback would cost ~1 us a row)."""
    assert plain_json is not None


@pytest.mark.skipif(plain_json is None, reason="this interpreter's _json has no usable encoder")
class TestPlainJson:
    """plain_json(value) is json.dumps(value, sort_keys=True, ensure_ascii=False), or raises."""

    @settings(max_examples=200, deadline=None)
    @given(value=_json_values)
    def test_same_text_as_json_dumps(self, value: Any) -> None:
        """Invariant: for any finite JSON value, the text is exactly json.dumps's."""
        assert plain_json is not None
        assert plain_json(value) == json.dumps(value, sort_keys=True, ensure_ascii=False)

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_non_finite_floats_raise(self, bad: float) -> None:
        """NaN and infinities raise (json would write bare NaN text, which is not JSON)."""
        assert plain_json is not None
        with pytest.raises(ValueError, match="not JSON compliant"):
            plain_json({"x": [bad]})

    def test_non_json_values_and_cycles_raise(self) -> None:
        """A value json cannot encode, or a cycle, raises instead of writing anything."""
        assert plain_json is not None
        cyclic: dict[str, Any] = {}
        cyclic["self"] = cyclic
        for bad in ({"x": {1, 2}}, {"x": object()}, cyclic):
            with pytest.raises((TypeError, ValueError, RecursionError)):
                plain_json(bad)
