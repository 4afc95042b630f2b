"""Tests for executor._yaml: guarded YAML loading on libyaml's event stream."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.errors import ValidationError
from executor._validate import parse_config_bytes
from executor._yaml import YamlGuardError, check_events, load_guarded

ROOT = Path(__file__).resolve().parent.parent
LIMITS = {"max_depth": 50, "max_events": 10_000}


class TestDuplicateKeys:
    def test_top_level_duplicate_is_refused_with_line_and_key(self) -> None:
        """A repeated top-level key is refused, naming the file, the key and its line."""
        doc = b"pipeline_id: x\nsteps:\n  - {step_id: a, processor: generic.noop}\npipeline_id: y\n"
        with pytest.raises(ValidationError) as info:
            parse_config_bytes(doc, source="cfg/p.yml")
        assert str(info.value) == (
            "cfg/p.yml: duplicate key 'pipeline_id' at line 4 (each key may appear once)"
        )

    def test_duplicate_inside_a_step_is_refused(self) -> None:
        """`depends_on` twice in one step is refused (last-one-wins would drop a dependency)."""
        doc = (
            b"pipeline_id: p\nsteps:\n"
            b"  - step_id: a\n    processor: generic.noop\n"
            b"  - step_id: b\n    processor: generic.noop\n"
            b"    depends_on: [a]\n    depends_on: []\n"
        )
        with pytest.raises(ValidationError, match=r"duplicate key 'depends_on' at line 8"):
            parse_config_bytes(doc, source="p.yml")

    def test_same_key_in_sibling_mappings_is_fine(self) -> None:
        """Keys are unique per mapping, not per document: two steps may both have step_id."""
        doc = b"a: {k: 1}\nb: {k: 2}\nc: [{k: 3}, {k: 4}]\n"
        assert load_guarded(doc, **LIMITS) == {
            "a": {"k": 1},
            "b": {"k": 2},
            "c": [{"k": 3}, {"k": 4}],
        }

    def test_merge_key_may_repeat(self) -> None:
        """YAML's merge key `<<` is not a user key and may appear more than once."""
        doc = b"base: &b {x: 1}\nmore: &m {y: 2}\nboth:\n  <<: *b\n  <<: *m\n"
        assert load_guarded(doc, **LIMITS)["both"] == {"x": 1, "y": 2}  # type: ignore[index]

    def test_keys_after_nested_values_are_tracked(self) -> None:
        """A duplicate that follows a nested mapping value is still seen (key/value alternation)."""
        doc = b"a:\n  inner: 1\nb: [1, 2]\na: 2\n"
        with pytest.raises(YamlGuardError, match=r"duplicate key 'a' at line 4"):
            check_events(doc, **LIMITS)


class TestLimits:
    def test_depth_guard_fires_before_construction(self) -> None:
        """Nesting past max_depth is refused from the events, naming the limit."""
        with pytest.raises(YamlGuardError, match="nested deeper than 3 levels"):
            check_events(b"a: {b: {c: {d: 1}}}", max_depth=3, max_events=100)

    def test_event_budget(self) -> None:
        """A document with more events than allowed is refused."""
        with pytest.raises(YamlGuardError, match="more than 5 YAML events"):
            check_events(b"[1, 2, 3, 4, 5, 6]", max_depth=5, max_events=5)


class TestSameResult:
    @pytest.mark.parametrize(
        "path", sorted((ROOT / "configs").rglob("*.yml")), ids=lambda p: p.stem
    )
    def test_shipped_configs_load_as_the_pure_python_loader_does(self, path: Path) -> None:
        """The fast path builds exactly what yaml.safe_load builds for every shipped config."""
        data = path.read_bytes()
        assert load_guarded(data, **LIMITS) == yaml.safe_load(data)

    def test_libyaml_refusal_falls_back_to_the_python_loader(self) -> None:
        """A lone surrogate escape (refused by libyaml) is read by the Python loader instead."""
        assert load_guarded(b'x: "\\ud800"', **LIMITS) == {"x": "\ud800"}


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["yes", "No", "0x1f", "1e3", "~", "2025-12-01", "<<", "=", "0o17", ".inf"]),
)
_documents = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


class TestEquivalence:
    @given(doc=_documents, flow=st.booleans())
    @settings(max_examples=150, deadline=None)
    def test_fast_path_builds_what_safe_load_builds(self, doc: object, flow: bool) -> None:
        """For any document safe_dump writes, load_guarded returns exactly what safe_load does."""
        data = yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True).encode()
        assert load_guarded(data, max_depth=60, max_events=100_000) == yaml.safe_load(data)


_IMPORT_PROBE = """
import json, re, sys
compile_before = re.compile
from classifier.errors import ValidationError
from executor._validate import parse_config_bytes
import yaml.reader
lazy = yaml.reader.Reader.NON_PRINTABLE
before = lazy._compiled is None
try:
    parse_config_bytes(b"pipeline_id: p\\nsteps: []\\nnote: 'bell \\x07'\\n", source="p.yml")
    message = None
except ValidationError as exc:
    message = str(exc)
print(json.dumps({"restored": re.compile is compile_before, "lazy_at_import": before,
                  "type": type(lazy).__name__, "message": message,
                  "compiled_after": lazy._compiled is not None}))
"""


class TestImport:
    def test_pyyaml_is_imported_without_compiling_its_reader_regex(self) -> None:
        """Importing the loader leaves PyYAML's NON_PRINTABLE uncompiled and re.compile as it was;
        a control character libyaml refuses is still refused by the pure-Python reader."""
        import json
        import subprocess
        import sys

        proc = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            timeout=60,
        )
        result = json.loads(proc.stdout.splitlines()[-1])
        assert result == {
            "restored": True,
            "lazy_at_import": True,
            "type": "LazyRegex",
            "message": "p.yml: invalid YAML: ReaderError",
            "compiled_after": True,
        }
