"""statemachine._scrub: metadata keys and values are bounded, redacted and cut at a fixed depth."""

from __future__ import annotations

from typing import Any

from classifier import redact
from statemachine._scrub import (
    CLEAN_KEYS,
    METADATA_DEPTH,
    METADATA_STRING_LIMIT,
    REASON_LIMIT,
    safe_str,
    scrub_metadata,
    scrub_optional,
)

SECRET = "password=hunter2secret"


def _nest(levels: int, make: str) -> Any:
    """`levels` containers (dicts or lists) inside each other around the leaf 'leaf'."""
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": value} if make == "dict" else [value]
    return value


def _levels(value: Any) -> tuple[int, Any]:
    """How many containers wrap the innermost non-container, and that innermost value."""
    count = 0
    while isinstance(value, dict | list):
        value = value["k"] if isinstance(value, dict) else value[0]
        count += 1
    return count, value


class TestDepth:
    """Containers are kept down to METADATA_DEPTH levels, the one below becomes a placeholder."""

    def test_dicts_cut_below_the_limit(self) -> None:
        """The metadata dict and its nested dicts count together; deeper ones become text."""
        kept = scrub_metadata(_nest(METADATA_DEPTH, "dict"))
        assert _levels(kept) == (METADATA_DEPTH, "leaf")
        cut = scrub_metadata(_nest(METADATA_DEPTH + 1, "dict"))
        assert _levels(cut) == (
            METADATA_DEPTH,
            f"<dict nested deeper than {METADATA_DEPTH} levels>",
        )

    def test_lists_cut_below_the_limit(self) -> None:
        """Lists count as levels like dicts and come back as lists."""
        kept = scrub_metadata({"k": _nest(METADATA_DEPTH - 1, "list")})
        assert _levels(kept) == (METADATA_DEPTH, "leaf")
        cut = scrub_metadata({"k": _nest(METADATA_DEPTH, "list")})
        assert _levels(cut) == (
            METADATA_DEPTH,
            f"<list nested deeper than {METADATA_DEPTH} levels>",
        )


class TestCycles:
    """A container that holds itself becomes a short placeholder; shared siblings do not."""

    def test_self_holding_dict(self) -> None:
        """A dict inside itself is replaced at the first repeat."""
        data: dict[str, Any] = {"a": 1}
        data["self"] = data
        assert scrub_metadata(data) == {"a": 1, "self": "<cycle: dict>"}

    def test_self_holding_list(self) -> None:
        """A list inside itself is replaced at the first repeat, one level down."""
        items: list[Any] = [1]
        items.append(items)
        assert scrub_metadata({"l": items}) == {"l": [1, "<cycle: list>"]}

    def test_nested_cycle_through_a_dict(self) -> None:
        """A cycle that runs through two dicts is cut where the outer dict repeats."""
        outer: dict[str, Any] = {}
        outer["inner"] = {"back": outer}
        assert scrub_metadata(outer) == {"inner": {"back": "<cycle: dict>"}}

    def test_shared_siblings_are_not_cycles(self) -> None:
        """The same dict under two keys is scrubbed in full both times."""
        shared = {"x": SECRET}
        out = scrub_metadata({"a": shared, "b": shared, "c": [shared, shared]})
        expected = {"x": redact(SECRET)}
        assert out == {"a": expected, "b": expected, "c": [expected, expected]}


class TestKeysAndValues:
    """String keys and values are redacted and bounded; other keys and leaves stay as they are."""

    def test_secret_key_and_value_redacted(self) -> None:
        """A secret in a key or a value (at any depth) is masked exactly as redact() masks it."""
        out = scrub_metadata({SECRET: "ok", "v": SECRET, "n": [{"d": SECRET}]})
        assert out == {redact(SECRET): "ok", "v": redact(SECRET), "n": [{"d": redact(SECRET)}]}
        assert "hunter2" not in repr(out)

    def test_non_string_keys_and_leaves_kept(self) -> None:
        """Integer, None and tuple keys, and non-string leaves, pass through unchanged."""
        data = {5: 1.5, None: True, (1, 2): None, "n": 3}
        assert scrub_metadata(data) == data

    def test_clean_keys_kept(self) -> None:
        """The executor's own keys come back unchanged."""
        data = dict.fromkeys(CLEAN_KEYS, 1)
        out = scrub_metadata(data)
        assert out == data
        assert list(out) == list(data)

    def test_metadata_strings_use_the_metadata_limit(self) -> None:
        """Keys and values up to METADATA_STRING_LIMIT are kept whole; longer ones are cut to it."""
        assert METADATA_STRING_LIMIT > REASON_LIMIT
        whole = ("ab " * METADATA_STRING_LIMIT)[:METADATA_STRING_LIMIT]
        out = scrub_metadata({whole: whole})
        assert out == {whole: whole}
        longer = whole + "ab"
        ((key, value),) = scrub_metadata({longer: longer}).items()
        assert key == value == whole

    def test_scrub_optional_bounds_reasons(self) -> None:
        """A reason is cut to REASON_LIMIT; None stays None; non-strings are rendered first."""
        assert scrub_optional(None) is None
        assert scrub_optional("x" * (REASON_LIMIT + 10)) == "x" * REASON_LIMIT
        assert scrub_optional(12) == "12"


class TestBoundAfterRedaction:
    """A text at the bound stays within it even when its mask is longer than the secret."""

    def test_mask_longer_than_secret(self) -> None:
        """A REASON_LIMIT-long text ending in a one-letter password comes back bounded, masked."""
        tail = " password=a"
        assert len(redact(tail)) > len(tail)
        text = "x" * (REASON_LIMIT - len(tail)) + tail
        out = scrub_optional(text)
        assert out is not None
        assert len(out) <= REASON_LIMIT
        assert out == redact(text)[:REASON_LIMIT]
        assert not out.endswith("=a")


class TestSafeStr:
    """safe_str renders anything, even objects whose __str__ fails or returns a non-string."""

    def test_odd_objects(self) -> None:
        """A raising or non-str __str__ gives a placeholder naming the class; others their str()."""

        class Raises:
            def __str__(self) -> str:
                raise RuntimeError("no")

        class Number:
            def __str__(self) -> str:
                return 7  # type: ignore[return-value]

        assert safe_str(Raises()) == f"<unprintable {Raises.__qualname__}>"
        assert safe_str(Number()) == f"<unprintable {Number.__qualname__}>"
        assert safe_str(3.5) == "3.5"
