"""Shared pieces of the exporter tests: shipped pipelines, a run with exporters, the schema."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from executor.config import PipelineConfig
from executor.runner import PipelineResult, run_pipeline
from persistence.fanout import ExportSettings, FanoutSink
from persistence.logger import MetadataLogger
from persistence.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
SCHEMAS = Path(__file__).resolve().parent / "data" / "openlineage"
ORG = "acme"
# Small batches and a short interval: tests wait on flush/stop, never on the timer.
FAST = ExportSettings(queue_size=1024, batch_size=16, interval_seconds=0.05)


def shipped_pipelines(tmp_path: Path) -> dict[str, str | Path]:
    """Every pipeline under configs/test; the timeout one as a 0.3 s copy (its file says 6 s)."""
    text = (CONFIGS / "test/timeout/test_timeout.yml").read_text()
    short = tmp_path / "test_timeout_short.yml"
    short.write_text(text.replace("timeout_minutes: 0.1", "timeout_minutes: 0.005"))
    return {
        "success": "test/success/test_success",
        "retry": "test/retry/test_retry",
        "dependency": "test/dependency/test_dependency",
        "timeout": short,
        "validation": "test/validation/test_bad_field",
    }


def run_logged(
    pipeline: str | Path | PipelineConfig,
    db: Path,
    workers: Sequence[Any],
    *,
    stop_timeout: float = 10.0,
    **kwargs: Any,
) -> tuple[PipelineResult, dict[str, Any]]:
    """Run a pipeline into SQLite (run/step rows derived) and the exporters; stop them after."""

    async def go() -> tuple[PipelineResult, dict[str, Any]]:
        store = SQLiteStore(db)
        try:
            async with MetadataLogger(store, derive_run_rows=True) as logger:
                fanout = FanoutSink(logger, workers)
                fanout.start()
                result = await run_pipeline(
                    pipeline, org_slug=ORG, logger=fanout, config_dir=CONFIGS, **kwargs
                )
                await logger.flush()
                await asyncio.to_thread(fanout.stop, stop_timeout)
            return result, fanout.stats()
        finally:
            store.close()

    return asyncio.run(go())


def rows(db: Path, table: str, pipeline_logging_id: str) -> list[dict[str, Any]]:
    """Every row of `table` for one pipeline run, straight from SQLite."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        cur = conn.execute(
            f"SELECT * FROM {table} WHERE pipeline_logging_id = ?",  # table is a test constant
            (pipeline_logging_id,),
        )
        return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


def openlineage_validator() -> Any:
    """A Draft 2020-12 validator of RunEvents over the vendored OpenLineage schema files.

    The core schema refers to its facet files relatively and the facet files to older copies
    of the core: all are registered under the URIs they are referred to by. Facets pipestate
    never emits are registered as plain objects (their files are not vendored).
    """
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource

    core = json.loads((SCHEMAS / "OpenLineage.json").read_text())
    base = core["$id"].rsplit("/", 1)[0]
    registry = Registry()
    core_resource = Resource.from_contents(core)
    for version in ("1-0-1", "1-0-2"):  # the facet files' $refs to the core
        registry = registry.with_resource(
            f"https://openlineage.io/spec/{version}/OpenLineage.json", core_resource
        )
    for name in ("ErrorMessageRunFacet", "ParentRunFacet"):
        facet = Resource.from_contents(json.loads((SCHEMAS / f"{name}.json").read_text()))
        registry = registry.with_resource(f"{base}/facets/{name}.json", facet)
    for name in _NOT_VENDORED:
        stub = Resource.from_contents({"$schema": core["$schema"], "type": "object"})
        registry = registry.with_resource(f"{base}/facets/{name}.json", stub)
    return Draft202012Validator(core, registry=registry, format_checker=FormatChecker())


_NOT_VENDORED = (
    "ExternalQueryRunFacet",
    "NominalTimeRunFacet",
    "DocumentationJobFacet",
    "OwnershipJobFacet",
    "SourceCodeJobFacet",
    "SourceCodeLocationJobFacet",
    "SQLJobFacet",
    "DataQualityMetricsInputDatasetFacet",
    "OutputStatisticsOutputDatasetFacet",
    "DatasourceDatasetFacet",
    "DataQualityAssertionsDatasetFacet",
    "LifecycleStateChangeDatasetFacet",
    "OwnershipDatasetFacet",
    "SchemaDatasetFacet",
    "StorageDatasetFacet",
    "SymlinksDatasetFacet",
    "DatasetVersionDatasetFacet",
)


LEAKY_PROCESSOR = "exporters.leaky"


def leaky_config() -> PipelineConfig:
    """One permanent and one retried step per secret kind of tests/test_secrets.py."""
    from executor.config import RetryDefaults, StepConfig
    from tests.strategies.hostile import SECRET_MESSAGES

    return PipelineConfig(
        pipeline_id="leaky",
        retry=RetryDefaults(max_retries=1, base_delay_seconds=0.0, max_delay_seconds=0.0),
        steps=tuple(
            StepConfig(
                step_id=f"{kind}_{'transient' if transient else 'permanent'}",
                processor=LEAKY_PROCESSOR,
                config={"kind": kind, "transient": transient},
            )
            for kind in SECRET_MESSAGES
            for transient in (False, True)
        ),
    )


def register_leaky() -> None:
    """Register the processor that raises the secret-bearing message its config names."""
    from collections.abc import Mapping

    from executor.processors import ProcessorContext, register
    from tests.strategies.hostile import SECRET_MESSAGES

    async def leak(context: ProcessorContext, config: Mapping[str, Any]) -> None:
        message = SECRET_MESSAGES[str(config["kind"])]
        if config.get("transient"):
            raise ConnectionError(f"connection reset by peer; {message}")
        raise RuntimeError(message)

    register(LEAKY_PROCESSOR, leak, replace=True)
