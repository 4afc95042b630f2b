"""The executor: pipeline configs, the processor registry, run_pipeline and the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier._lazy import lazy_exports

if TYPE_CHECKING:
    from executor.config import (
        PipelineConfig,
        RetryDefaults,
        StepConfig,
        load_pipeline_config,
        parse_pipeline_config,
    )
    from executor.processors import ProcessorContext, processor
    from executor.runner import PipelineResult, run_pipeline

__all__ = [
    "PipelineConfig",
    "PipelineResult",
    "ProcessorContext",
    "RetryDefaults",
    "StepConfig",
    "load_pipeline_config",
    "parse_pipeline_config",
    "processor",
    "run_pipeline",
]

# Lazy exports keep `pipestate --help` fast: the runner pulls in the state machines.
_WHERE = {
    "PipelineConfig": "executor.config",
    "RetryDefaults": "executor.config",
    "StepConfig": "executor.config",
    "load_pipeline_config": "executor.config",
    "parse_pipeline_config": "executor.config",
    "ProcessorContext": "executor.processors",
    "processor": "executor.processors",
    "PipelineResult": "executor.runner",
    "run_pipeline": "executor.runner",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
