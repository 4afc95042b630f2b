"""Tests for classifier._jsonsafe.json_safe: what additional_context becomes before it is stored."""

from __future__ import annotations

import math

from classifier._jsonsafe import MAX_DEPTH, json_safe


class TestScalars:
    """Scalars pass through when JSON can hold them exactly, else become strings."""

    def test_none_and_bools_pass_through(self) -> None:
        """None, True and False are kept as they are."""
        assert json_safe(None) is None
        assert json_safe(True) is True
        assert json_safe(False) is False

    def test_integers_beyond_64_bits_become_strings(self) -> None:
        """Integers a 64-bit reader cannot hold are kept as their digits."""
        assert json_safe(2**63 - 1) == 2**63 - 1
        assert json_safe(2**63) == str(2**63)
        assert json_safe(-(2**63)) == str(-(2**63))
        assert json_safe(-(2**63) + 1) == -(2**63) + 1

    def test_non_finite_floats_become_strings(self) -> None:
        """inf and nan are not JSON; finite floats are kept."""
        assert json_safe(1.5) == 1.5
        assert json_safe(math.inf) == "inf"
        assert json_safe(math.nan) == "nan"

    def test_bytes_are_decoded_and_redacted(self) -> None:
        """Bytes become text, undecodable bytes are replaced, secrets masked."""
        assert json_safe(b"password=hunter2 ok") == "password=*** ok"
        assert json_safe(b"\xffok") == "\ufffdok"

    def test_unknown_objects_become_their_str(self) -> None:
        """Anything else is stored as its (redacted) str()."""

        class Thing:
            def __str__(self) -> str:
                return "thing token=abc123"

        assert json_safe(Thing()) == "thing token=***"


class TestContainers:
    """Containers are copied with bounded depth; sets in a stable order."""

    def test_depth_is_cut_at_max_depth(self) -> None:
        """Below MAX_DEPTH levels a container is stored as its str(), not dropped."""
        value: object = ["leaf"]
        for _ in range(MAX_DEPTH + 2):
            value = [value]
        out = json_safe(value)
        for _ in range(MAX_DEPTH):
            assert isinstance(out, list)
            assert len(out) == 1
            out = out[0]
        assert isinstance(out, str)
        assert "leaf" in out

    def test_mapping_depth_is_cut_too(self) -> None:
        """Nested mappings follow the same bound, one level per mapping."""
        value: object = {"k": "leaf"}
        for _ in range(MAX_DEPTH):
            value = {"k": value}
        out = json_safe(value)
        for _ in range(MAX_DEPTH):
            assert isinstance(out, dict)
            out = out["k"]
        assert isinstance(out, str)

    def test_sets_are_sorted_by_repr(self) -> None:
        """A set of mixed types is listed in repr order, deterministically."""
        assert json_safe({"b", 1}) == ["b", 1]
        assert json_safe(frozenset({3, 1, 2})) == [1, 2, 3]

    def test_non_string_keys_become_strings(self) -> None:
        """JSON object keys are strings."""
        assert json_safe({1: "a", None: "b"}) == {"1": "a", "None": "b"}
