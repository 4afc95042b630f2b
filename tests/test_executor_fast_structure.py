"""Tests for executor._fast_structure: configs built without cattrs, as cattrs builds them."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from executor._fast_structure import structure
from executor._validate import converter
from executor.config import PipelineConfig

_IDS = st.sampled_from(["a", "b", "extract", "load_1"])
# One value of every type a YAML document can hold, to put where another type belongs.
_VALUES = (None, True, False, 0, 3, 1.5, "", "x", [], ["a"], {}, {"k": 1}, {1: 1})
_ANY: st.SearchStrategy[Any] = st.sampled_from(_VALUES)
# Every key set, to flaw one at a time.
_FULL = {
    "pipeline_id": "p",
    "steps": [
        {
            "step_id": "a",
            "processor": "generic.noop",
            "config": {"k": 1},
            "depends_on": ["b"],
            "timeout_minutes": 1,
            "max_retries": 2,
        }
    ],
    "description": "d",
    "timeout_minutes": 2.5,
    "retry": {"max_retries": 1, "base_delay_seconds": 1, "multiplier": 2, "max_delay_seconds": 9},
    "concurrency": 2,
    "fail_fast": True,
    "params": {"date": {"type": "date", "required": True, "default": None, "description": "x"}},
}


@st.composite
def _documents(draw: st.DrawFn) -> dict[Any, Any]:
    """A well-formed config document (required keys, right types, optional keys or not)."""

    def fields(
        spec: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...]
    ) -> dict[Any, Any]:
        return {
            key: draw(strategy)
            for key, strategy in spec.items()
            if key in required or draw(st.booleans())
        }

    number = st.integers(0, 5) | st.floats(0, 5, width=32)
    step = st.builds(
        lambda: fields(
            {
                "step_id": _IDS,
                "processor": st.just("generic.noop"),
                "config": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                "depends_on": st.lists(_IDS, max_size=2),
                "timeout_minutes": st.none() | number,
                "max_retries": st.none() | st.integers(0, 3),
            },
            ("step_id", "processor"),
        )
    )
    retry = st.builds(
        lambda: fields(
            {
                "max_retries": st.integers(0, 3),
                "base_delay_seconds": number,
                "multiplier": number,
                "max_delay_seconds": number,
            },
            (),
        )
    )
    param = st.builds(
        lambda: fields(
            {
                "type": st.sampled_from(["string", "date"]),
                "required": st.booleans(),
                "default": _ANY,
                "description": st.none() | st.text(max_size=3),
            },
            (),
        )
    )
    return fields(
        {
            "pipeline_id": _IDS,
            "steps": st.lists(step, max_size=3),
            "description": st.none() | st.text(max_size=5),
            "timeout_minutes": number,
            "retry": retry,
            "concurrency": st.integers(1, 4),
            "fail_fast": st.booleans(),
            "params": st.dictionaries(st.sampled_from(["date", "n"]), param, max_size=2),
        },
        ("pipeline_id", "steps"),
    )


@st.composite
def _flawed(draw: st.DrawFn) -> dict[Any, Any]:
    """A well-formed document with one flaw: a value of another type, a key dropped or added."""
    doc = draw(_documents())
    places: list[dict[Any, Any] | list[Any]] = [doc]
    for value in (doc.get("retry"), *doc.get("steps", ()), *doc.get("params", {}).values()):
        if isinstance(value, dict):
            places.append(value)
    places += [s["depends_on"] for s in doc.get("steps", ()) if s.get("depends_on")]
    place = draw(st.sampled_from(places))
    if isinstance(place, list):
        place[draw(st.integers(0, len(place) - 1))] = draw(_ANY)
        return doc
    flaw = draw(st.sampled_from(["retype", "drop", "add"]) if place else st.just("add"))
    if flaw == "add":
        place[draw(st.sampled_from(["source", "extra", 1]))] = 1
    else:
        key = draw(st.sampled_from(sorted(place)))
        if flaw == "drop":
            del place[key]
        else:
            place[key] = draw(_ANY)
    return doc


def _cattrs(doc: dict[Any, Any]) -> PipelineConfig | None:
    try:
        config: PipelineConfig = converter().structure(doc, PipelineConfig)
    except Exception:
        return None
    return config


class TestStructure:
    @settings(max_examples=300)
    @given(_flawed())
    def test_agrees_with_cattrs_or_defers(self, doc: dict[Any, Any]) -> None:
        """Invariant: whatever the fast path builds, cattrs builds identically (types too);
        whatever cattrs refuses, the fast path leaves to cattrs."""
        fast = structure(doc)
        if fast is not None:
            slow = _cattrs(doc)
            assert slow is not None
            assert repr(fast) == repr(slow)  # repr tells 1 from 1.0, which == does not

    def test_every_single_retyped_value_agrees(self) -> None:
        """Each key of a full config set to each kind of YAML value: fast path == cattrs."""
        import copy

        def places(doc: dict[str, Any]) -> list[tuple[Any, Any]]:
            step = doc["steps"][0]
            inner = [doc["retry"], step, doc["params"]["date"], doc["params"], step["config"]]
            out: list[tuple[Any, Any]] = [(d, k) for d in [doc, *inner] for k in d]
            return [*out, (step["depends_on"], 0)]

        checked = 0
        for i in range(len(places(_FULL))):
            for value in _VALUES:
                doc = copy.deepcopy(_FULL)
                place, key = places(doc)[i]
                place[key] = value
                fast = structure(doc)
                slow = _cattrs(doc)
                assert fast is None or repr(fast) == repr(slow), (key, value)
                checked += fast is not None
        assert checked  # the fast path did build some of them

    @given(_documents())
    def test_well_formed_configs_never_need_cattrs(self, doc: dict[Any, Any]) -> None:
        """Invariant: a document of the right shapes and types is built by the fast path."""
        assert structure(doc) is not None
        assert repr(structure(doc)) == repr(_cattrs(doc))
