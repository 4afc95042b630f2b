"""Structure a well-formed config without cattrs; anything else is left to cattrs' messages.

cattrs (with typing_extensions) costs a `pipestate run` about as much CPU as everything else it
imports to read a config. A valid config is plain data of a few known shapes, so this builds the
PipelineConfig directly and returns None at the first thing it is not sure of: an unknown or
missing key, a value of another type, a subclass. The caller then runs the cattrs converter
(executor._validate), which gives the same result on what this accepts (a hypothesis property
in tests/test_executor_config.py checks it) and the precise error on the rest.
"""

from __future__ import annotations

from typing import Any

from executor.config import PipelineConfig, RetryDefaults, StepConfig
from executor.params import ParamSpec


class _Unsure(Exception):
    """Raised inside this module when cattrs must decide."""


def _str(value: Any) -> str:
    if type(value) is not str:
        raise _Unsure
    return value


def _int(value: Any) -> int:
    if type(value) is not int:  # bool is an int subclass: refused here, as by cattrs' hook
        raise _Unsure
    return value


def _float(value: Any) -> float:
    if type(value) is not float and type(value) is not int:
        raise _Unsure
    return float(value)


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Unsure
    return value


def _optional(convert: Any) -> Any:
    def inner(value: Any) -> Any:
        return None if value is None else convert(value)

    return inner


def _mapping(value: Any) -> dict[str, Any]:
    if type(value) is not dict or any(type(k) is not str for k in value):
        raise _Unsure
    return dict(value)


def _str_tuple(value: Any) -> tuple[str, ...]:
    if type(value) is not list and type(value) is not tuple:
        raise _Unsure
    return tuple(_str(v) for v in value)


def _record(cls: type, fields: dict[str, Any], value: Any) -> Any:
    """Build `cls` from a dict holding only known keys; missing keys take the class defaults."""
    if type(value) is not dict:
        raise _Unsure
    kwargs = {}
    for key, item in value.items():
        convert = fields.get(key) if type(key) is str else None
        if convert is None:
            raise _Unsure  # an unknown key (or `source`, which configs may not set)
        kwargs[key] = convert(item)
    try:
        return cls(**kwargs)
    except TypeError:  # a required field is missing
        raise _Unsure from None


_RETRY = {
    "max_retries": _int,
    "base_delay_seconds": _float,
    "multiplier": _float,
    "max_delay_seconds": _float,
}
_STEP = {
    "step_id": _str,
    "processor": _str,
    "config": _mapping,
    "depends_on": _str_tuple,
    "timeout_minutes": _optional(_float),
    "max_retries": _optional(_int),
}
_PARAM = {"type": _str, "required": _bool, "default": lambda v: v, "description": _optional(_str)}


def _steps(value: Any) -> tuple[StepConfig, ...]:
    if type(value) is not list and type(value) is not tuple:
        raise _Unsure
    return tuple(_record(StepConfig, _STEP, v) for v in value)


def _params(value: Any) -> dict[str, ParamSpec]:
    return {k: _record(ParamSpec, _PARAM, v) for k, v in _mapping(value).items()}


_PIPELINE = {
    "pipeline_id": _str,
    "steps": _steps,
    "description": _optional(_str),
    "timeout_minutes": _float,
    "retry": lambda v: _record(RetryDefaults, _RETRY, v),
    "concurrency": _int,
    "fail_fast": _bool,
    "params": _params,
}


def structure(doc: object) -> PipelineConfig | None:
    """The PipelineConfig cattrs would build from `doc`, or None when cattrs must decide."""
    try:
        config: PipelineConfig = _record(PipelineConfig, _PIPELINE, doc)
    except _Unsure:
        return None
    return config
