"""Run parameters: the `params:` schema, checks of run values, context.params and the record in
PENDING -> RUNNING; the CLI's --param."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from classifier.errors import ValidationError
from executor.config import parse_pipeline_config
from executor.params import ParamSpec, parse_assignments, resolve
from executor.processors import ProcessorContext, register, unregister
from executor.runner import run_pipeline
from pipestate.cli import main
from statemachine.sink import InMemorySink

SCHEMA = {
    "date": ParamSpec(type="date", required=True),
    "limit": ParamSpec(type="integer", default=100),
    "ratio": ParamSpec(type="number"),
    "dry_run": ParamSpec(type="boolean", default=False),
    "label": ParamSpec(type="string"),
}

PIPELINE = """\
pipeline_id: with-params
params:
  date: {type: date, required: true}
  limit: {type: integer, default: 100}
steps:
  - {step_id: capture, processor: test.capture_params}
"""


class TestResolve:
    """resolve(schema, values): the three refusals and the conversions."""

    def test_defaults_fill_in_and_strings_convert(self) -> None:
        """CLI strings become the declared types; unset optional params take their defaults."""
        got = resolve(SCHEMA, {"date": "2025-12-01", "ratio": "0.5", "label": "x"})
        assert dict(got) == {
            "date": "2025-12-01",
            "limit": 100,
            "ratio": 0.5,
            "dry_run": False,
            "label": "x",
        }

    def test_missing_required_names_the_parameter(self) -> None:
        """A missing required parameter is an error naming it and its type."""
        with pytest.raises(ValidationError, match=r"params\.date: required parameter missing"):
            resolve(SCHEMA, {})

    @pytest.mark.parametrize(
        ("name", "value", "expected"),
        [
            ("date", "2025-13-01", "a date YYYY-MM-DD"),
            ("date", 20251201, "a date YYYY-MM-DD"),
            ("limit", "ten", "an integer"),
            ("limit", 1.5, "an integer"),
            ("limit", True, "an integer"),
            ("ratio", "nan", "a finite number"),
            ("dry_run", "maybe", "a boolean"),
            ("label", 5, "a string"),
        ],
    )
    def test_wrong_type_names_the_parameter(self, name: str, value: Any, expected: str) -> None:
        """A value of the wrong type is an error naming the parameter, the type and the value."""
        values = {"date": "2025-12-01", name: value}
        with pytest.raises(ValidationError, match=rf"params\.{name}: expected {expected}"):
            resolve(SCHEMA, values)

    def test_extra_parameter_is_refused_when_a_schema_is_declared(self) -> None:
        """An undeclared parameter is an error naming it and the declared ones."""
        with pytest.raises(ValidationError, match=r"params\.region: unknown parameter"):
            resolve(SCHEMA, {"date": "2025-12-01", "region": "eu"})

    def test_without_a_schema_parameters_pass_through(self) -> None:
        """No params: block means any small JSON object is accepted as is (read-only)."""
        got = resolve({}, {"anything": [1, {"a": 2}]})
        assert dict(got) == {"anything": [1, {"a": 2}]}
        with pytest.raises(TypeError):
            got["x"] = 1  # type: ignore[index]

    @pytest.mark.parametrize(
        "values",
        [{"bad key": 1}, {"k": "x" * 20_000}, {f"k{i}": i for i in range(100)}, {"k": {1, 2}}],
    )
    def test_hostile_values_are_refused(self, values: dict[str, Any]) -> None:
        """Non-identifier names, oversized, too many or non-JSON values are refused."""
        with pytest.raises(ValidationError, match="params"):
            resolve({}, values)

    def test_parse_assignments(self) -> None:
        """NAME=VALUE pairs split at the first '='; anything else is a ValueError."""
        assert parse_assignments(["date=2025-12-01", "q=a=b"]) == {"date": "2025-12-01", "q": "a=b"}
        with pytest.raises(ValueError, match="NAME=VALUE"):
            parse_assignments(["oops"])


class TestSchemaInConfig:
    """The `params:` block of a pipeline YAML is checked when the config is loaded."""

    def test_schema_is_parsed(self) -> None:
        """Declared params become ParamSpecs on the config."""
        config = parse_pipeline_config(PIPELINE.replace("test.capture_params", "generic.noop"))
        assert config.params["date"] == ParamSpec(type="date", required=True)
        assert config.params["limit"].default == 100

    @pytest.mark.parametrize(
        ("block", "message"),
        [
            ("params: {date: {type: nope}}", "params.date.type: expected one of"),
            ("params: {date: {kind: date}}", "unknown key 'kind'"),
            ("params: {date: date}", "expected a mapping"),
            ("params: {n: {type: integer, default: x}}", "params.n.default: expected an integer"),
            ("params: {n: {type: integer, required: true, default: 1}}", "takes no default"),
            ("params: {1bad: {type: string}}", "expected a name"),
        ],
    )
    def test_bad_schema_is_one_clear_error(self, block: str, message: str) -> None:
        """A broken params: block fails loading with an error naming the parameter."""
        text = f"pipeline_id: p\n{block}\nsteps: [{{step_id: a, processor: generic.noop}}]\n"
        with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
            parse_pipeline_config(text)


@pytest.fixture
def capture() -> Any:
    """A processor that records the params it was given."""
    seen: list[Mapping[str, Any]] = []

    async def capture_params(context: ProcessorContext, config: Mapping[str, Any]) -> None:
        seen.append(context.params)

    register("test.capture_params", capture_params, replace=True)
    yield seen
    unregister("test.capture_params")


class TestRunPipeline:
    """run_pipeline(..., params=...) hands params to processors and records them."""

    def test_params_reach_processors_and_the_first_transition(self, capture: Any) -> None:
        """context.params holds the resolved values; PENDING -> RUNNING records them."""
        sink = InMemorySink()
        config = parse_pipeline_config(PIPELINE)
        result = asyncio.run(
            run_pipeline(config, org_slug="acme", logger=sink, params={"date": "2025-12-01"})
        )
        assert result.state == "COMPLETED"
        assert [dict(p) for p in capture] == [{"date": "2025-12-01", "limit": 100}]
        first = sink.records[0]
        assert (first.from_state, first.to_state) == ("PENDING", "RUNNING")
        assert first.metadata["params"] == {"date": "2025-12-01", "limit": 100}

    @pytest.mark.parametrize(
        ("params", "fragment"),
        [
            ({}, "params.date: required parameter missing"),
            ({"date": "tomorrow"}, "params.date: expected a date"),
            ({"date": "2025-12-01", "extra": 1}, "params.extra: unknown parameter"),
        ],
    )
    def test_bad_params_end_the_run_as_a_validation_error(
        self, capture: Any, params: dict[str, Any], fragment: str
    ) -> None:
        """Missing, wrong-typed or extra params: PENDING -> RUNNING -> FAILED, no step runs."""
        sink = InMemorySink()
        config = parse_pipeline_config(PIPELINE)
        result = asyncio.run(run_pipeline(config, org_slug="acme", logger=sink, params=params))
        assert (result.state, result.error_type) == ("FAILED", "VALIDATION_ERROR")
        assert fragment in (result.error_message or "")
        assert [(r.from_state, r.to_state) for r in sink.records] == [
            ("PENDING", "RUNNING"),
            ("RUNNING", "FAILED"),
        ]
        assert capture == []


class TestCliParam:
    """`pipestate run ... --param NAME=VALUE`."""

    def test_param_flag_reaches_the_run(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], capture: Any
    ) -> None:
        """--param date=... is checked against the schema and recorded in the first row."""
        path = tmp_path / "p.yml"
        path.write_text(PIPELINE)
        store = f"sqlite:{tmp_path / 'a.db'}"
        args = ["run", str(path), "--org", "acme", "--store", store, "--json"]
        assert main([*args, "--param", "date=2025-12-01", "--param", "limit=7"]) == 0
        out = capsys.readouterr().out
        assert json.loads(out)  # --json output parses
        assert [dict(p) for p in capture] == [{"date": "2025-12-01", "limit": 7}]
        # A missing required parameter is a configuration error (exit 2), as is bad syntax.
        assert main([*args, "--param", "limit=7"]) == 2
        assert "params.date: required parameter missing" in capsys.readouterr().out
        assert main([*args, "--param", "oops"]) == 2
