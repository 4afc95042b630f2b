"""Tests for executor.config: strict loading, readable errors, name resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.errors import ValidationError
from executor.config import (
    MAX_CONFIG_BYTES,
    PipelineConfig,
    RetryDefaults,
    StepConfig,
    load_pipeline_config,
    parse_pipeline_config,
    resolve_pipeline,
)

NOOP = "steps: [{step_id: a, processor: generic.noop}]"

GOOD = """
pipeline_id: demo
description: a demo
timeout_minutes: 0.5
retry: {max_retries: 2, base_delay_seconds: 0.01, multiplier: 2, max_delay_seconds: 1}
concurrency: 2
steps:
  - step_id: extract
    processor: generic.noop
  - step_id: transform
    processor: generic.slow_processor
    config: {sleep_seconds: 0.1}
    depends_on: [extract]
    timeout_minutes: 1
    max_retries: 0
"""

REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _error(text: str, source: str = "p.yml") -> str:
    with pytest.raises(ValidationError) as info:
        parse_pipeline_config(text, source=source)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{source}: ")
    return message


class TestLoading:
    """A good config becomes frozen attrs objects with every field in place."""

    def test_good_config_structures(self) -> None:
        """Every key of a valid document lands in the right attribute."""
        cfg = parse_pipeline_config(GOOD, source="good.yml")
        assert cfg.pipeline_id == "demo"
        assert cfg.timeout_minutes == 0.5
        assert cfg.retry == RetryDefaults(
            max_retries=2, base_delay_seconds=0.01, multiplier=2.0, max_delay_seconds=1.0
        )
        assert cfg.concurrency == 2
        assert cfg.fail_fast is False
        assert cfg.source == "good.yml"
        assert cfg.steps[1] == StepConfig(
            step_id="transform",
            processor="generic.slow_processor",
            config={"sleep_seconds": 0.1},
            depends_on=("extract",),
            timeout_minutes=1.0,
            max_retries=0,
        )

    def test_defaults(self) -> None:
        """Optional keys take documented defaults."""
        cfg = parse_pipeline_config(
            "pipeline_id: p\nsteps: [{step_id: a, processor: generic.noop}]"
        )
        assert cfg.timeout_minutes == 60.0
        assert cfg.retry == RetryDefaults()
        assert cfg.steps[0].config == {}
        assert cfg.steps[0].depends_on == ()
        assert cfg.steps[0].timeout_minutes is None

    def test_seed_timeout_file(self) -> None:
        """The seed's test_timeout.yml loads by name with 0.1 minutes and a 30 s sleep."""
        cfg = load_pipeline_config("test/timeout/test_timeout", config_dir=REPO_CONFIGS)
        assert isinstance(cfg, PipelineConfig)
        assert cfg.pipeline_id == "test-timeout"
        assert cfg.timeout_minutes == 0.1
        assert cfg.steps[0].processor == "generic.slow_processor"
        assert cfg.steps[0].config == {"sleep_seconds": 30}

    def test_every_shipped_config_but_the_bad_one_loads(self) -> None:
        """All configs under configs/ are valid except the deliberately broken validation one."""
        files = sorted(REPO_CONFIGS.rglob("*.yml"))
        assert len(files) >= 5
        for path in files:
            if "bad" in path.stem:
                with pytest.raises(ValidationError):
                    load_pipeline_config(path)
            else:
                load_pipeline_config(path)


class TestErrors:
    """Every bad config raises ValidationError naming file, field path and the problem."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "pipeline_id: p\nbogus: 1\nsteps: [{step_id: a, processor: generic.noop}]",
                "(top level): unknown key 'bogus'",
            ),
            (
                "pipeline_id: p\nsteps: [{step_id: a, processor: generic.noop, colour: red}]",
                "steps[0]: unknown key 'colour'",
            ),
            (
                "pipeline_id: p\nsteps: [{step_id: 7, processor: generic.noop}]",
                "steps[0].step_id: expected a string, got int 7",
            ),
            (
                "pipeline_id: p\ntimeout_minutes: soon\n" + NOOP,
                "timeout_minutes: expected a number, got string 'soon'",
            ),
            (
                "pipeline_id: p\nsteps: [{processor: generic.noop}]",
                "steps[0].step_id: required field missing",
            ),
            (
                "pipeline_id: p\nsteps: [{step_id: a, processor: generic.noop, depends_on: b}]",
                "steps[0].depends_on: expected a list, got string 'b'",
            ),
            (
                "pipeline_id: p\nsteps: [{step_id: a, processor: generic.nope}]",
                "steps[0].processor: unknown processor 'generic.nope'",
            ),
            (
                "pipeline_id: p\nsteps: [{step_id: a, processor: generic.noop},"
                " {step_id: a, processor: generic.noop}]",
                "steps[1].step_id: duplicate 'a' (also steps[0])",
            ),
            (
                "pipeline_id: p\nsteps: [{step_id: a, processor: generic.noop, depends_on: [z]}]",
                "steps[0].depends_on[0]: unknown step 'z'",
            ),
            (
                "pipeline_id: p\nsteps: [{step_id: a, processor: generic.noop,"
                " timeout_minutes: -1}]",
                "steps[0].timeout_minutes: expected a number > 0, got float -1.0",
            ),
            (
                "pipeline_id: p\ntimeout_minutes: 0\n" + NOOP,
                "timeout_minutes: expected a number > 0",
            ),
            (
                "pipeline_id: ../etc\nsteps: [{step_id: a, processor: generic.noop}]",
                "pipeline_id: expected an identifier",
            ),
            (
                "pipeline_id: p\nsteps: [{step_id: 'a b', processor: generic.noop}]",
                "steps[0].step_id: expected an identifier",
            ),
            ("pipeline_id: p\nsteps: []", "steps: expected at least one step"),
            (
                "pipeline_id: p\nsteps: [{step_id: a, processor: generic.slow_processor,"
                " config: {sleep_seconds: x}}]",
                "steps[0].config.sleep_seconds: expected a number >= 0",
            ),
            (
                "pipeline_id: p\nretry: {max_retries: -1}\n" + NOOP,
                "retry.max_retries: expected an integer >= 0",
            ),
            (
                "pipeline_id: p\nfail_fast: 1\nsteps: [{step_id: a, processor: generic.noop}]",
                "fail_fast: expected a boolean, got int 1",
            ),
            ("- just\n- a list\n", "expected a mapping at the top level, got list"),
            ("pipeline_id: [unclosed\n", "invalid YAML at line"),
        ],
    )
    def test_message_names_field_and_problem(self, text: str, expected: str) -> None:
        """The message contains the field path and what was expected versus received."""
        assert expected in _error(text)

    def test_cycle_is_named(self) -> None:
        """A dependency cycle is reported with the steps that form it."""
        text = (
            "pipeline_id: p\nsteps:\n"
            "  - {step_id: a, processor: generic.noop, depends_on: [c]}\n"
            "  - {step_id: b, processor: generic.noop, depends_on: [a]}\n"
            "  - {step_id: c, processor: generic.noop, depends_on: [b]}\n"
            "  - {step_id: d, processor: generic.noop}\n"
        )
        assert "steps: dependency cycle a -> c -> b -> a" in _error(text)

    def test_self_dependency(self) -> None:
        """A step depending on itself is refused."""
        text = "pipeline_id: p\nsteps: [{step_id: a, processor: generic.noop, depends_on: [a]}]"
        assert "depends on itself" in _error(text)

    def test_many_problems_are_summarised(self) -> None:
        """More than three problems are counted rather than listed."""
        steps = ", ".join(f"{{step_id: s{i}, processor: x.y}}" for i in range(6))
        assert "(and 3 more problems)" in _error(f"pipeline_id: p\nsteps: [{steps}]")

    def test_alias_bomb_is_refused(self) -> None:
        """A YAML alias bomb is refused before it expands."""
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
        assert "more than" in _error("\n".join(lines))

    def test_deep_nesting_is_refused(self) -> None:
        """A deeply nested document is refused without a RecursionError."""
        assert "nested deeper" in _error("x: " + "[" * 5000 + "]" * 5000)

    def test_size_limit(self, tmp_path: Path) -> None:
        """A file larger than the size limit is refused before parsing."""
        path = tmp_path / "big.yml"
        path.write_text("# " + "x" * MAX_CONFIG_BYTES)
        with pytest.raises(ValidationError, match="larger than"):
            load_pipeline_config(path)

    def test_python_tags_are_refused(self) -> None:
        """safe_load semantics: python object tags are invalid YAML, never executed."""
        assert "invalid YAML" in _error("pipeline_id: !!python/object/apply:os.system [echo]")


class TestResolution:
    """Pipeline names map to files under the configs dir and never escape it."""

    def test_name_maps_to_file(self, tmp_path: Path) -> None:
        """provider/domain/pipeline resolves to configs/provider/domain/pipeline.yml."""
        target = tmp_path / "gcp" / "cost" / "billing.yml"
        target.parent.mkdir(parents=True)
        target.write_text("x: 1")
        assert resolve_pipeline("gcp/cost/billing", tmp_path) == target

    def test_env_config_dir(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """PIPESTATE_CONFIG_DIR is used when no directory is passed."""
        target = tmp_path / "a" / "b" / "c.yaml"
        target.parent.mkdir(parents=True)
        target.write_text("x: 1")
        monkeypatch.setenv("PIPESTATE_CONFIG_DIR", str(tmp_path))
        assert resolve_pipeline("a/b/c") == target

    def test_missing_name(self, tmp_path: Path) -> None:
        """A name without a file raises ValidationError naming the expected path."""
        with pytest.raises(ValidationError, match=r"invalid/domain/pipeline: pipeline not found"):
            resolve_pipeline("invalid/domain/pipeline", tmp_path)

    @pytest.mark.parametrize("ref", ["../../etc/passwd", "a/../../b", "/etc/passwd", "a/b/.."])
    def test_traversal_refused(self, tmp_path: Path, ref: str) -> None:
        """Names with '..' or absolute paths to non-configs are never resolved into a config."""
        with pytest.raises(ValidationError):
            load_pipeline_config(ref, config_dir=tmp_path)

    def test_symlink_escape_refused(self, tmp_path: Path) -> None:
        """A symlink inside the configs dir pointing outside it is refused."""
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "p.yml").write_text("x: 1")
        root = tmp_path / "configs" / "a"
        root.mkdir(parents=True)
        (root / "b").symlink_to(outside)
        with pytest.raises(ValidationError, match="outside"):
            resolve_pipeline("a/b/p", tmp_path / "configs")
