"""Hostile pipeline configs always end in one readable ValidationError, never another exception."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.errors import ValidationError
from executor.config import PipelineConfig, load_pipeline_config, parse_pipeline_config
from executor.runner import PipelineResult, run_pipeline
from statemachine import InMemorySink
from tests.strategies.hostile import (
    alias_bomb,
    alias_bomb_in_field,
    config_documents,
    deep_yaml,
    dump_yaml,
    transition_rows,
    with_logger,
)

SOURCE = "cfg/hostile.yml"
# After "<file>: " comes a field path ("steps[0].config.x", "(top level)") or a document-level
# problem; several problems are joined with "; ".
_FIELD = r"(?:\(top level\)|[A-Za-z_][\w]*(?:\[\d+\])?(?:\.[\w]+(?:\[\d+\])?)*)"
_DOCUMENT = r"(?:invalid YAML|document |expected a mapping at the top level|config larger)"
MESSAGE = re.compile(rf"^{re.escape(SOURCE)}: (?:{_FIELD}: |{_DOCUMENT})")
# Refusing an alias bomb must not cost more than a small multiple of the input.
MEMORY_BUDGET_BYTES = 64 * 1024 * 1024
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_refusal(data: bytes | str, source: str = SOURCE) -> str:
    """Parse data; it must be valid or a one-line ValidationError naming file and field."""
    try:
        parse_pipeline_config(data, source=source)
    except ValidationError as exc:
        message = str(exc)
        assert "\n" not in message
        assert "\r" not in message
        assert MESSAGE.match(message), message
        assert len(message) < 4000
        return message
    return ""


def _peak_bytes(data: str | bytes) -> tuple[str, int]:
    """The ValidationError message parsing data raises, and tracemalloc's peak meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError) as info:
            parse_pipeline_config(data, source=SOURCE)
        return str(info.value), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class TestFuzzedDocuments:
    """Random types at every field, random bytes and random text."""

    @FUZZ
    @given(config_documents())
    def test_random_field_types(self, doc: object) -> None:
        """Whatever type each field holds, the loader returns a config or a one-line
        ValidationError that starts with the file and names the field path."""
        _check_refusal(dump_yaml(doc))

    @FUZZ
    @given(st.binary(max_size=400))
    def test_random_bytes(self, data: bytes) -> None:
        """Arbitrary bytes (binary, invalid UTF-8, NULs) are a ValidationError, never a crash."""
        _check_refusal(data)

    @FUZZ
    @given(st.text(max_size=400))
    def test_random_text(self, text: str) -> None:
        """Arbitrary unicode text is a ValidationError (or, rarely, a valid config)."""
        _check_refusal(text)

    @FUZZ
    @given(
        st.sampled_from(["pipeline_id", "description", "steps[0].step_id"]),
        st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    )
    def test_lone_surrogate_escapes(self, field: str, surrogates: str) -> None:
        """Lone surrogates written as YAML escapes ("\\ud800") are refused or kept, never fatal."""
        escaped = "".join(f"\\u{ord(c):04x}" for c in surrogates)
        value = f'"{escaped}"'
        doc = "pipeline_id: p1\nsteps:\n  - {step_id: s1, processor: generic.noop}\n"
        if field == "pipeline_id":
            doc = doc.replace("p1", value)
        elif field == "description":
            doc += f"description: {value}\n"
        else:
            doc = doc.replace("step_id: s1", f"step_id: {value}")
        message = _check_refusal(doc)
        if field != "description":
            assert message.startswith(f"{SOURCE}: {field}: ")


class TestShapeAttacks:
    """Documents built to exhaust memory, time or the recursion limit."""

    @pytest.mark.parametrize(
        ("name", "text"),
        [
            ("billion_laughs", alias_bomb()),
            ("wide_bomb", alias_bomb(levels=6, fan_out=40)),
            ("bomb_in_step_config", alias_bomb_in_field()),
        ],
    )
    def test_alias_bombs_are_refused_not_expanded(self, name: str, text: str) -> None:
        """A billion-laughs document is refused by a ValidationError while memory stays small."""
        message, peak = _peak_bytes(text)
        assert message.startswith(f"{SOURCE}: ")
        assert "expands to more than" in message
        assert peak < MEMORY_BUDGET_BYTES

    @pytest.mark.parametrize(
        ("kind", "depth"), [("flow_list", 5000), ("flow_map", 5000), ("block_map", 400)]
    )
    def test_deep_nesting_is_refused(self, kind: str, depth: int) -> None:
        """Thousands of levels of nesting are a ValidationError, not a RecursionError."""
        message = _check_refusal(deep_yaml(depth, kind))
        assert "nested deeper than" in message or "invalid YAML" in message

    def test_huge_string_field(self) -> None:
        """A 900 KB pipeline_id is refused with a message that quotes it only briefly."""
        message = _check_refusal("pipeline_id: " + "x" * 900_000 + "\nsteps: []\n")
        assert message.startswith(f"{SOURCE}: pipeline_id: ")
        assert len(message) < 1000

    def test_oversized_file_is_refused_unread(self, tmp_path: Path) -> None:
        """A config over the size limit is refused before YAML parsing."""
        path = tmp_path / "big.yml"
        path.write_bytes(b"# " + b"x" * (2 * 1024 * 1024))
        with pytest.raises(ValidationError, match="config larger than"):
            load_pipeline_config(path)

    def test_huge_integer_is_a_validation_error(self) -> None:
        """An integer literal longer than Python's int-string limit (4300 digits) is a
        ValidationError naming the file, not a bare ValueError from PyYAML."""
        doc = "pipeline_id: p1\nconcurrency: " + "9" * 5000 + "\nsteps: []\n"
        with pytest.raises(ValidationError, match=f"^{re.escape(SOURCE)}: "):
            parse_pipeline_config(doc, source=SOURCE)

    @pytest.mark.parametrize(
        "text",
        [
            "!!python/object/apply:os.system ['echo pwned']",
            "pipeline_id: !!python/name:os.system ''\nsteps: []",
            "- 1\n- 2\n",
            "42\n",
            "~\n",
            "",
            "'just a string'\n",
            "? [a, b]\n: 1\n",
            "pipeline_id: p1\n<<: *undefined\n",
            "\ufeff\x00\x01",
            "%YAML 9.9\n---\na: 1\n",
            "a: 1\n---\nb: 2\n",
        ],
    )
    def test_non_mapping_and_unsafe_documents(self, text: str) -> None:
        """Python tags, non-mapping documents, unhashable keys and multi-documents are refused."""
        with pytest.raises(ValidationError):
            parse_pipeline_config(text, source=SOURCE)
        _check_refusal(text)


class TestConfigSideEffects:
    """Validating a config must not execute code the config names."""

    def test_generic_fail_exception_does_not_import_modules(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """generic.fail's `exception: pkg.mod.Error` must not import pkg.mod while validating
        (an import runs arbitrary module code: `antigravity` opens a browser)."""
        module = "pipestate_hostile_side_effect"
        (tmp_path / f"{module}.py").write_text(
            "import os\nos.environ['PIPESTATE_HOSTILE_IMPORTED'] = '1'\n"
            "class Boom(Exception):\n    pass\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delenv("PIPESTATE_HOSTILE_IMPORTED", raising=False)
        monkeypatch.delitem(sys.modules, module, raising=False)
        doc = (
            "pipeline_id: p1\nsteps:\n  - step_id: s1\n    processor: generic.fail\n"
            f"    config: {{exception: {module}.Boom}}\n"
        )
        # Refusing a non-builtin exception name is a fine answer; importing it is not.
        with contextlib.suppress(ValidationError):
            parse_pipeline_config(doc, source=SOURCE)
        imported = os.environ.get("PIPESTATE_HOSTILE_IMPORTED") == "1"
        sys.modules.pop(module, None)
        assert not imported


def _run(ref: str | Path, **kwargs: object) -> tuple[PipelineResult, InMemorySink]:
    sink = InMemorySink()
    result = asyncio.run(run_pipeline(ref, org_slug="org", logger=sink, **kwargs))  # type: ignore[arg-type]
    return result, sink


class TestRunPipelineWithBadConfigs:
    """A bad config still leaves the seed's PENDING -> RUNNING -> FAILED trail."""

    @pytest.mark.parametrize(
        "content",
        [alias_bomb(), deep_yaml(500), b"\x00\xff\xfe binary", "- not\n- a mapping\n", ""],
        ids=["bomb", "deep", "binary", "list", "empty"],
    )
    def test_trail_is_pending_running_failed(self, tmp_path: Path, content: str | bytes) -> None:
        """run_pipeline returns FAILED/VALIDATION_ERROR and emits exactly the two rows."""
        path = tmp_path / "bad.yml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        result, sink = _run(path)
        assert result.state == "FAILED"
        assert result.error_type == "VALIDATION_ERROR"
        trail = [(r.from_state, r.to_state, r.error_type) for r in sink.records]
        assert trail == [("PENDING", "RUNNING", None), ("RUNNING", "FAILED", "VALIDATION_ERROR")]
        assert str(path) in (sink.records[-1].error_message or "")

    @pytest.mark.parametrize(
        "ref", ["../../etc/passwd-not-here", "no/such/pipeline", "/nonexistent/x.yml"]
    )
    def test_missing_config(self, tmp_path: Path, ref: str) -> None:
        """A missing config is the same trail, under the requested name, never an exception."""
        result, sink = _run(ref, config_dir=tmp_path)
        assert result.state == "FAILED"
        assert result.error_type == "VALIDATION_ERROR"
        assert [r.to_state for r in sink.records] == ["RUNNING", "FAILED"]

    def test_directory_as_config(self, tmp_path: Path) -> None:
        """A directory given as a config path fails validation instead of raising."""
        result, _ = _run(tmp_path)
        assert result.state == "FAILED"
        assert result.error_type == "VALIDATION_ERROR"

    def test_bad_config_rows_land_and_next_pipeline_runs(self, tmp_path: Path) -> None:
        """Through MetadataLogger into SQLite: the failure rows land and a good run follows."""
        bad = tmp_path / "bad.yml"
        bad.write_text(alias_bomb())
        good = tmp_path / "good.yml"
        good.write_text("pipeline_id: good\nsteps:\n  - {step_id: s1, processor: generic.noop}\n")
        db = tmp_path / "audit.db"

        async def body(logger: object) -> list[PipelineResult]:
            first = await run_pipeline(bad, org_slug="org", logger=logger)  # type: ignore[arg-type]
            second = await run_pipeline(good, org_slug="org", logger=logger)  # type: ignore[arg-type]
            return [first, second]

        (first, second), depths = with_logger(db, body)
        assert (first.state, second.state) == ("FAILED", "COMPLETED")
        rows = transition_rows(db)
        failed = [r for r in rows if r["pipeline_logging_id"] == first.pipeline_logging_id]
        assert [(r["to_state"], r["error_type"]) for r in failed] == [
            ("RUNNING", None),
            ("FAILED", "VALIDATION_ERROR"),
        ]
        assert len(rows) == 2 + 4
        assert depths["state_transition"]["rows_dropped"] == 0

    def test_valid_config_still_parses(self) -> None:
        """Control: the guards do not refuse an ordinary config with anchors and aliases."""
        text = (
            "pipeline_id: ok\nretry: &r {max_retries: 1}\nsteps:\n"
            "  - {step_id: a, processor: generic.noop}\n"
            "  - {step_id: b, processor: generic.noop, depends_on: [a]}\n"
        )
        assert isinstance(parse_pipeline_config(text, source=SOURCE), PipelineConfig)
