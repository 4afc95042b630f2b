"""Which span exporter the OTEL_* variables ask for, checked without importing OpenTelemetry."""

from __future__ import annotations

import os

EXPORTERS = ("otlp", "console")
PROTOCOLS = ("http/protobuf", "grpc")


def otel_exporter_choice() -> tuple[str, str]:
    """(exporter, protocol) from OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL."""
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if kind not in EXPORTERS:
        raise ValueError(f"OTEL_TRACES_EXPORTER must be 'otlp' or 'console' (got {kind!r}).")
    for var in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = os.environ.get(var, "").strip()
        if protocol:
            if protocol not in PROTOCOLS:
                raise ValueError(f"{var} must be 'http/protobuf' or 'grpc' (got {protocol!r}).")
            return kind, protocol
    return kind, "http/protobuf"
