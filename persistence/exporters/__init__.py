"""Exporters that feed open standards from the transition stream (OpenLineage, OpenTelemetry).

Nothing here imports openlineage or opentelemetry until an exporter is asked for: both are
optional extras (`pipestate[lineage]`, `pipestate[otel]`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from persistence.fanout import ExportSettings, ExportWorkerLike

# Environment switches (the CLI flags --lineage / --otel read the same variables).
LINEAGE_ENV = "PIPESTATE_LINEAGE"
OTEL_ENV = "PIPESTATE_OTEL"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
# Extra -> (distribution it needs, install hint). Checked by metadata: importing (even
# find_spec of a submodule) would load the library into a process that never uses it.
EXTRAS: Mapping[str, tuple[str, str]] = {
    "lineage": ("openlineage-python", "pip install 'pipestate[lineage]'"),
    "otel": ("opentelemetry-sdk", "pip install 'pipestate[otel]'"),
}


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """A boolean environment switch; anything but a yes/no word is an error naming it."""
    raw = (os.environ if environ is None else environ).get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name} must be one of 1/0, true/false, yes/no, on/off (got {raw!r}).")


def enabled_from_env(environ: Mapping[str, str] | None = None) -> tuple[bool, bool]:
    """(lineage, otel) as PIPESTATE_LINEAGE and PIPESTATE_OTEL say."""
    return env_flag(LINEAGE_ENV, environ), env_flag(OTEL_ENV, environ)


def _require(extra: str) -> None:
    from importlib.metadata import PackageNotFoundError, version

    distribution, hint = EXTRAS[extra]
    try:
        version(distribution)
    except PackageNotFoundError:
        raise ImportError(f"--{extra} needs the '{extra}' extra ({hint}).") from None


def build_exporters(
    lineage: bool,
    otel: bool,
    *,
    settings: ExportSettings | None = None,
    openlineage_client: Any = None,
    span_exporter: Any = None,
    service_name: str | None = None,
    isolate: bool | None = None,
) -> list[ExportWorkerLike]:
    """The unstarted workers for the exporters asked for; feed them with FanoutSink.

    By default (isolate=True) all of them run together in one child process behind one
    ExportProcess: the libraries' CPU cost then never slows the pipeline's process, which does
    not even import them, and each record is packed and sent once for all exporters. Passing an
    `openlineage_client` or `span_exporter` object (tests: an in-memory exporter), or
    isolate=False, runs that exporter in an ExportWorker thread instead. The OpenLineage client
    reads its own configuration; the span exporter follows the OTEL_* variables. A missing extra
    raises ImportError naming the package to install; a bad OTEL_* value raises ValueError
    naming the variable.
    """
    from persistence._export_worker import ExportWorker
    from persistence.fanout import ExportSettings

    chosen = settings if settings is not None else ExportSettings.from_env()
    workers: list[ExportWorkerLike] = []
    isolated: list[str] = []
    if lineage:
        _require("lineage")
        if isolate is not False and openlineage_client is None:
            isolated.append("openlineage")
        else:
            from persistence.exporters.openlineage import OpenLineageExporter

            workers.append(ExportWorker(OpenLineageExporter(openlineage_client), chosen))
    if otel:
        _require("otel")
        if isolate is not False and span_exporter is None:
            from persistence.exporters._otel_env import otel_exporter_choice

            otel_exporter_choice()  # a bad OTEL_* value is refused here, not in the child
            isolated.append("otel")
        else:
            from persistence.exporters.otel import OTelExporter

            exporter = OTelExporter(span_exporter, service_name=service_name)
            workers.append(ExportWorker(exporter, chosen))
    if isolated:
        from persistence._export_process import ExportProcess

        workers.append(ExportProcess(isolated, chosen, service_name=service_name))
    return workers


__all__ = ["LINEAGE_ENV", "OTEL_ENV", "build_exporters", "enabled_from_env", "env_flag"]
