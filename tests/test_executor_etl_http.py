"""Tests for executor.etl.http_extract against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from executor.config import parse_pipeline_config
from executor.etl.http_extract import ResponseTooLarge, check_config, http_extract
from executor.processors import ConfigProblem, ProcessorContext
from executor.runner import run_pipeline
from persistence.logger import MetadataLogger
from persistence.stores.sqlite import SQLiteStore
from tests.strategies.pipelines import read_rows

pytest.importorskip("httpx")
duckdb = pytest.importorskip("duckdb")
ROWS = [{"service": "BigQuery", "cost": 12.5}, {"service": "Cloud SQL", "cost": 3.25}]


class _Handler(BaseHTTPRequestHandler):
    """Serves JSON, CSV, a flaky endpoint (503 then 200) and a large body."""

    failures_left: ClassVar[dict[str, int]] = {}
    seen_queries: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:  # keep test output clean
        return

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        self.seen_queries.append(query)
        if path == "/costs.json":
            self._send(200, json.dumps(ROWS).encode(), "application/json")
        elif path == "/costs.csv":
            self._send(200, b"service,cost\nBigQuery,12.5\nCloud SQL,3.25\n", "text/csv")
        elif path.startswith("/flaky"):
            left = self.failures_left.get(path, 0)
            if left:
                self.failures_left[path] = left - 1
                status = 429 if path.endswith("429") else 503
                self._send(status, b"slow down", "text/plain", **{"Retry-After": "0"})
            else:
                self._send(200, json.dumps(ROWS).encode(), "application/json")
        elif path == "/big":
            self._send(200, b"x" * 200_000, "application/json")
        else:
            self._send(404, b"not found", "text/plain")


@pytest.fixture
def server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (a free port), stopped after the test."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.failures_left.clear()
    _Handler.seen_queries.clear()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _ctx(tmp_path: Path) -> ProcessorContext:
    return ProcessorContext(
        pipeline_logging_id="r",
        pipeline_id="p",
        step_id="fetch",
        attempt=1,
        org_slug="o",
        config_source=str(tmp_path / "p.yml"),
    )


def _extract(tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    check_config(config)
    return asyncio.run(http_extract(_ctx(tmp_path), config))


class TestDownloads:
    def test_json_to_file_and_duckdb(self, server: str, tmp_path: Path) -> None:
        """A JSON body lands in the output file and, loaded, in a DuckDB table with its rows."""
        out = _extract(
            tmp_path,
            {
                "url": f"{server}/costs.json",
                "output": "raw/costs.json",
                "duckdb": {"database": "w.duckdb", "table": "raw_costs"},
            },
        )
        assert json.loads((tmp_path / "raw/costs.json").read_text()) == ROWS
        assert (out["rows_processed"], out["http_status"], out["format"]) == (2, 200, "json")
        con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
        assert con.execute("SELECT sum(cost) FROM raw_costs").fetchone() == (15.75,)
        con.close()

    def test_csv_format_from_content_type(self, server: str, tmp_path: Path) -> None:
        """Without `format`, a text/csv response is read as CSV."""
        out = _extract(
            tmp_path,
            {
                "url": f"{server}/costs.csv",
                "output": "costs.csv",
                "duckdb": {"database": "w.duckdb", "table": "c", "mode": "append"},
            },
        )
        assert (out["format"], out["rows_processed"]) == ("csv", 2)

    def test_oversized_body_is_refused_and_leaves_no_file(
        self, server: str, tmp_path: Path
    ) -> None:
        """Past max_bytes the download stops with a clear error and no partial file remains."""
        with pytest.raises(ResponseTooLarge, match="max_bytes=1000"):
            _extract(tmp_path, {"url": f"{server}/big", "output": "big.json", "max_bytes": 1000})
        assert list(tmp_path.iterdir()) == []

    def test_run_parameters_fill_the_query_string(self, server: str, tmp_path: Path) -> None:
        """A query value "$date" is the run parameter, sent as a real query parameter."""
        ctx = ProcessorContext(
            pipeline_logging_id="r",
            pipeline_id="p",
            step_id="s",
            attempt=1,
            org_slug="o",
            config_source=str(tmp_path / "p.yml"),
            params={"date": "2025-12-01"},
        )
        config = {
            "url": f"{server}/costs.json",
            "output": "c.json",
            "query": {"date": "$date", "n": 5},
        }
        asyncio.run(http_extract(ctx, config))
        assert _Handler.seen_queries[-1] == "date=2025-12-01&n=5"

    @pytest.mark.parametrize(
        ("config", "key"),
        [
            ({"url": "ftp://x", "output": "o"}, "url"),
            ({"url": "http://x"}, "output"),
            ({"url": "http://x", "output": "o", "format": "xml"}, "format"),
            ({"url": "http://x", "output": "o", "max_bytes": 0}, "max_bytes"),
            (
                {"url": "http://x", "output": "o", "duckdb": {"database": "d", "table": "a;b"}},
                "duckdb.table",
            ),
        ],
    )
    def test_bad_configs_name_the_key(self, config: dict[str, Any], key: str) -> None:
        """Each mistake is refused at load time naming the key."""
        with pytest.raises(ConfigProblem) as info:
            check_config(config)
        assert info.value.key == key


class TestRetriedByTheEngine:
    @pytest.mark.parametrize("endpoint", ["/flaky503", "/flaky429"])
    def test_unavailable_endpoint_is_transient_and_retried(
        self, server: str, tmp_path: Path, endpoint: str
    ) -> None:
        """A 503 or 429 is classified TRANSIENT, retried by the step's policy, then completes."""
        _Handler.failures_left[endpoint] = 1
        config = parse_pipeline_config(
            "pipeline_id: fetch\n"
            "retry: {max_retries: 2, base_delay_seconds: 0.01}\n"
            "steps:\n"
            "  - step_id: fetch\n"
            "    processor: http.extract\n"
            f"    config: {{url: '{server}{endpoint}', output: '{tmp_path}/x.json'}}\n"
        )

        async def go() -> str:
            store = SQLiteStore(tmp_path / "a.db")
            try:
                async with MetadataLogger(store) as logger:
                    return (
                        await run_pipeline(config, org_slug="o", logger=logger)
                    ).pipeline_logging_id
            finally:
                store.close()

        rows = read_rows(tmp_path / "a.db", asyncio.run(go()))
        step = [
            (r["from_state"], r["to_state"], r["error_type"], r["retry_count"])
            for r in rows
            if r["entity_type"] == "STEP"
        ]
        assert step == [
            ("PENDING", "RUNNING", None, 0),
            ("RUNNING", "RETRYING", "TRANSIENT", 0),
            ("RETRYING", "RUNNING", None, 1),
            ("RUNNING", "COMPLETED", None, 1),
        ]
