"""Pipeline configuration: attrs classes, YAML loading and resolution of pipeline names."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import attrs

from classifier.errors import ValidationError
from executor.params import ParamSpec

if TYPE_CHECKING:
    from pathlib import Path

CONFIG_DIR_ENV = "PIPESTATE_CONFIG_DIR"
DEFAULT_CONFIG_DIR = "configs"
MAX_CONFIG_BYTES = 1024 * 1024
# Identifiers end up in file names, SQL parameters and terminal output: keep them boring.
IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_NAME_RE = re.compile(
    r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}){2}\Z"
)


@attrs.frozen(kw_only=True)
class RetryDefaults:
    """Retry policy for every step of a pipeline (a step may override max_retries)."""

    max_retries: int = 3
    base_delay_seconds: float = 2.0
    multiplier: float = 2.0
    max_delay_seconds: float = 300.0


@attrs.frozen(kw_only=True)
class StepConfig:
    """One step: which processor runs, with what settings, after which steps."""

    step_id: str
    processor: str
    config: dict[str, Any] = attrs.field(factory=dict)
    depends_on: tuple[str, ...] = ()
    timeout_minutes: float | None = None
    max_retries: int | None = None


@attrs.frozen(kw_only=True)
class PipelineConfig:
    """A pipeline: its id, deadline, retry defaults and steps (a DAG through depends_on)."""

    pipeline_id: str
    steps: tuple[StepConfig, ...]
    description: str | None = None
    timeout_minutes: float = 60.0
    retry: RetryDefaults = attrs.field(factory=RetryDefaults)
    concurrency: int = 8
    fail_fast: bool = False
    # Declared run parameters (executor.params); empty: parameters pass through unchecked.
    params: dict[str, ParamSpec] = attrs.field(factory=dict)
    source: str | None = attrs.field(default=None, eq=False)

    def step(self, step_id: str) -> StepConfig:
        """Return the step named `step_id` (KeyError if absent)."""
        for s in self.steps:
            if s.step_id == step_id:
                return s
        raise KeyError(step_id)


def config_dir_from_env(config_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the configs directory: the argument, else $PIPESTATE_CONFIG_DIR, else ./configs."""
    from pathlib import Path

    if config_dir is not None:
        return Path(config_dir)
    return Path(os.environ.get(CONFIG_DIR_ENV) or DEFAULT_CONFIG_DIR)


def is_pipeline_name(ref: str) -> bool:
    """Tell whether `ref` looks like provider/domain/pipeline rather than a file path."""
    return bool(_NAME_RE.match(ref)) and not ref.endswith((".yml", ".yaml"))


def resolve_pipeline(
    ref: str | os.PathLike[str], config_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Map a pipeline name or a path to a config file, refusing names that leave the configs dir."""
    from pathlib import Path

    return Path(_resolve(ref, config_dir))


def _resolve(ref: str | os.PathLike[str], config_dir: str | os.PathLike[str] | None) -> str:
    """resolve_pipeline's file as a string; a plain file path needs no pathlib (a cold start)."""
    text = os.fspath(ref)
    if not is_pipeline_name(text):
        if not os.path.isfile(text):
            raise ValidationError(f"{text}: pipeline config not found (no such file)")
        return text
    parts = text.split("/")
    if any(p in (".", "..") or set(p) == {"."} for p in parts):
        raise ValidationError(f"{text}: invalid pipeline name (path traversal is not allowed)")
    root = config_dir_from_env(config_dir)
    for ext in (".yml", ".yaml"):
        candidate = root.joinpath(*parts[:-1], parts[-1] + ext)
        try:
            inside = candidate.resolve().is_relative_to(root.resolve())
        except OSError:
            inside = False
        if not inside:
            raise ValidationError(f"{text}: invalid pipeline name (resolves outside {root})")
        if candidate.is_file():
            return str(candidate)
    raise ValidationError(
        f"{text}: pipeline not found (expected {root.joinpath(*parts[:-1], parts[-1] + '.yml')})"
    )


def load_pipeline_config(
    ref: str | os.PathLike[str], *, config_dir: str | os.PathLike[str] | None = None
) -> PipelineConfig:
    """Resolve, read and validate a pipeline config; raise ValidationError naming file and field."""
    from executor._validate import parse_config_bytes

    path = _resolve(ref, config_dir)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ValidationError(f"{path}: config larger than {MAX_CONFIG_BYTES} bytes")
    return parse_config_bytes(data, source=path)


def parse_pipeline_config(text: str | bytes, *, source: str = "<string>") -> PipelineConfig:
    """Validate a YAML document held in memory (same rules as load_pipeline_config)."""
    from executor._validate import parse_config_bytes

    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) > MAX_CONFIG_BYTES:
        raise ValidationError(f"{source}: config larger than {MAX_CONFIG_BYTES} bytes")
    return parse_config_bytes(data, source=source)
