"""pipestate: the product's front door (`import pipestate`), the CLI, the demo and the service.

The engine lives in four top-level packages (classifier <- statemachine <- persistence <- executor);
this package re-exports their public API and holds the interfaces. Names are imported on first
use so that `import pipestate` and `pipestate --help` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from classifier import (
        ErrorType,
        classify_error,
        create_error_context,
        get_retry_delay,
        is_retryable,
        redact,
    )
    from executor import (
        PipelineConfig,
        PipelineResult,
        ProcessorContext,
        load_pipeline_config,
        parse_pipeline_config,
        processor,
        run_pipeline,
    )
    from persistence import LoggerSettings, MetadataLogger, SQLiteStore, open_store
    from persistence.stores.bigquery import BigQueryStore
    from statemachine import (
        IllegalTransition,
        PipelineRun,
        PipelineState,
        StepRun,
        StepState,
        TransitionRecord,
    )

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily by __getattr__)
_WHERE: dict[str, str] = {
    "ErrorType": "classifier",
    "classify_error": "classifier",
    "create_error_context": "classifier",
    "get_retry_delay": "classifier",
    "is_retryable": "classifier",
    "redact": "classifier",
    "IllegalTransition": "statemachine",
    "PipelineRun": "statemachine",
    "PipelineState": "statemachine",
    "StepRun": "statemachine",
    "StepState": "statemachine",
    "TransitionRecord": "statemachine",
    "LoggerSettings": "persistence",
    "MetadataLogger": "persistence",
    "SQLiteStore": "persistence",
    "open_store": "persistence",
    "BigQueryStore": "persistence.stores.bigquery",
    "PipelineConfig": "executor",
    "PipelineResult": "executor",
    "ProcessorContext": "executor",
    "load_pipeline_config": "executor",
    "parse_pipeline_config": "executor",
    "processor": "executor",
    "run_pipeline": "executor",
}

__all__ = [
    "BigQueryStore",
    "ErrorType",
    "IllegalTransition",
    "LoggerSettings",
    "MetadataLogger",
    "PipelineConfig",
    "PipelineResult",
    "PipelineRun",
    "PipelineState",
    "ProcessorContext",
    "SQLiteStore",
    "StepRun",
    "StepState",
    "TransitionRecord",
    "__version__",
    "classify_error",
    "create_error_context",
    "get_retry_delay",
    "is_retryable",
    "load_pipeline_config",
    "open_store",
    "parse_pipeline_config",
    "processor",
    "redact",
    "run_pipeline",
]


def __getattr__(name: str) -> Any:
    """Import a public name from the engine package that defines it, on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pipestate' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public API (for tab completion and help())."""
    return sorted({*globals(), *_WHERE})
