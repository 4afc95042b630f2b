"""Replicas side by side and graceful shutdown: three servers on one SQLite file, three on one
BigQuery dataset (one outbox each), and SIGTERM during 20 running pipelines."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bq_emulator import BQEmulator, drop_dataset, emulator_client
from tests.service_support import (
    Server,
    create_key,
    make_config_dir,
    root_headers,
    run_servers,
    sqlite_rows,
)

ORG = "replica_org"
LEGAL = {
    "PIPELINE": {("PENDING", "RUNNING"), ("RUNNING", "COMPLETED"), ("RUNNING", "FAILED"),
                 ("RUNNING", "TIMEOUT")},
    "STEP": {("PENDING", "RUNNING"), ("RUNNING", "COMPLETED"), ("RUNNING", "FAILED"),
             ("RUNNING", "RETRYING"), ("RETRYING", "RUNNING"), ("PENDING", "FAILED"),
             ("RETRYING", "FAILED")},
}  # fmt: skip
TERMINAL = {"COMPLETED", "FAILED", "TIMEOUT"}
GRACE = 1.0
BQ_RUNS = 300  # the figure; ~20 s more than 30 runs at load average 7-11


@contextlib.contextmanager
def _trio(workdir: Path, store: str, config_dir: Path, **kw: Any) -> Iterator[list[Server]]:
    """Three servers on one store, started side by side (one outbox file each on BigQuery)."""
    args = [
        ["--grace-seconds", str(GRACE)]
        + (["--outbox", str(workdir / f"outbox-{i}.db")] if "bigquery" in store else [])
        for i in range(3)
    ]
    with run_servers(workdir, args, store=store, config_dir=config_dir, **kw) as servers:
        yield servers


async def _spread(servers: list[Server], key: str, runs: int, pipeline: str) -> list[str]:
    """Start `runs` runs round-robin over the servers, 30 at a time, each waiting for its end."""
    gate = asyncio.Semaphore(30)
    targets = itertools.cycle(servers)
    headers = {"X-API-Key": key}

    async def one(client: httpx.AsyncClient) -> str:
        async with gate:
            response = await client.post(
                f"/api/v1/pipelines/run/{ORG}/{pipeline}?wait=true", headers=headers
            )
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "COMPLETED"
        return str(response.json()["pipeline_logging_id"])

    clients = [httpx.AsyncClient(base_url=s.url, timeout=120) for s in servers]
    by_url = {s.url: c for s, c in zip(servers, clients, strict=True)}
    try:
        return await asyncio.gather(*(one(by_url[next(targets).url]) for _ in range(runs)))
    finally:
        for client in clients:
            await client.aclose()


def _check_chains(rows: list[dict[str, Any]], run_ids: set[str], steps_per_run: int) -> None:
    """Each run has exactly its transitions, once each, and every chain is legal and ends."""
    chains: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    seen: set[str] = set()
    for row in rows:
        assert row["transition_id"] not in seen, "a transition was stored twice"
        seen.add(row["transition_id"])
        entity = (row["pipeline_logging_id"], row["entity_type"], row["entity_name"])
        chains.setdefault(entity, []).append((row["from_state"], row["to_state"]))
    assert {pid for pid, _, _ in chains} == run_ids
    assert len(chains) == len(run_ids) * (1 + steps_per_run)
    for (_, kind, _), edges in chains.items():
        assert all(edge in LEGAL[kind] for edge in edges), edges
        assert edges[0][0] == "PENDING"
        assert all(a[1] == b[0] for a, b in itertools.pairwise(edges)), edges
        assert edges[-1][1] in TERMINAL


@pytest.fixture(scope="module")
def sqlite_trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Server]]]:
    """Three servers on one SQLite file."""
    workdir = tmp_path_factory.mktemp("replicas")
    with _trio(workdir, f"sqlite:{workdir / 'audit.db'}", make_config_dir(workdir)) as servers:
        yield workdir, servers


class TestSQLiteReplicas:
    """Three `pipestate serve` processes on one SQLite file."""

    def test_300_runs_across_three_servers_store_every_row_once(
        self, sqlite_trio: tuple[Path, list[Server]]
    ) -> None:
        """300 runs of a 10-step pipeline spread over 3 servers: all rows once, chains legal."""
        workdir, servers = sqlite_trio
        key = create_key(servers[0], ORG)["api_key"]
        run_ids = asyncio.run(_spread(servers, key, 300, "test/bench/noop10"))
        for server in servers:  # a read flushes each server's pending rows
            with server.client() as client:
                client.get(f"/api/v1/runs/{ORG}", headers={"X-API-Key": key})
        rows = sqlite_rows(
            workdir / "audit.db",
            "SELECT transition_id, pipeline_logging_id, entity_type, entity_name, from_state, "
            "to_state FROM org_meta_state_transitions WHERE org_slug = ? "
            "ORDER BY transition_time, rowid",
            (ORG,),
        )
        assert len(set(run_ids)) == 300
        _check_chains(rows, set(run_ids), steps_per_run=10)
        assert len(rows) == 300 * 22

    def test_key_created_on_one_replica_works_on_all_and_revocation_reaches_all(
        self, sqlite_trio: tuple[Path, list[Server]]
    ) -> None:
        """A key made on server 0 works on servers 1 and 2; revoked on 1, all refuse it in 5 s."""
        _, servers = sqlite_trio
        created = create_key(servers[0], "revoke_org")
        headers = {"X-API-Key": created["api_key"]}
        for server in servers:
            with server.client() as client:
                assert client.get("/api/v1/runs/revoke_org", headers=headers).status_code == 200
        with servers[1].client() as client:
            revoked = client.delete(
                f"/api/v1/admin/keys/{created['key_id']}", headers=root_headers()
            )
        assert revoked.status_code == 200
        deadline = time.monotonic() + 5.0
        refused: set[str] = set()
        while time.monotonic() < deadline and len(refused) < 3:
            for server in servers:
                with server.client() as client:
                    if client.get("/api/v1/runs/revoke_org", headers=headers).status_code == 401:
                        refused.add(server.url)
        assert refused == {s.url for s in servers}

    def test_sigterm_during_20_running_pipelines_drains_and_exits_0(
        self, sqlite_trio: tuple[Path, list[Server]]
    ) -> None:
        """SIGTERM with 20 runs in flight: 503 for new runs, exit 0 within grace + a few
        seconds, every entity terminal and every row stored."""
        workdir, servers = sqlite_trio
        server = servers[2]
        key = create_key(server, "drain_org")["api_key"]
        headers = {"X-API-Key": key}
        with server.client() as client:
            ids = [
                client.post(
                    f"/api/v1/pipelines/run/drain_org/test/slow/{'short' if i % 2 else 'slow'}",
                    headers=headers,
                ).json()["pipeline_logging_id"]
                for i in range(20)
            ]
            server.proc.send_signal(signal.SIGTERM)
            refused = client.post(
                "/api/v1/pipelines/run/drain_org/test/slow/short", headers=headers
            )
            began = time.monotonic()
        code = server.proc.wait(timeout=GRACE + 20)  # one signal only: a second one forces
        took = time.monotonic() - began
        assert refused.status_code == 503
        assert code == 0, server.log_text()[-2000:]
        assert took < GRACE + 10
        rows = sqlite_rows(
            workdir / "audit.db",
            "SELECT transition_id, pipeline_logging_id, entity_type, entity_name, from_state, "
            "to_state FROM org_meta_state_transitions WHERE org_slug = 'drain_org' "
            "ORDER BY transition_time, rowid",
        )
        _check_chains(rows, set(ids), steps_per_run=2)
        finals = {
            r["pipeline_logging_id"]: r["to_state"]
            for r in rows
            if r["entity_type"] == "PIPELINE" and r["to_state"] in TERMINAL
        }
        short = {ids[i] for i in range(20) if i % 2}
        assert {finals[i] for i in short} == {"COMPLETED"}
        assert {finals[i] for i in set(ids) - short} == {"FAILED"}
        sources = {
            json.loads(r["metadata"]).get("cancel_source")
            for r in sqlite_rows(
                workdir / "audit.db",
                "SELECT metadata FROM org_meta_state_transitions WHERE org_slug = 'drain_org' "
                "AND entity_type = 'PIPELINE' AND to_state = 'FAILED'",
            )
        }
        assert sources == {"shutdown"}  # cancelled by the drain, and the rows say so


@pytest.mark.bigquery
@pytest.mark.slow
def test_three_servers_on_one_bigquery_dataset(bq_emulator: BQEmulator, tmp_path: Path) -> None:
    """300 runs over 3 servers on one BigQuery dataset (one outbox each): every row once, legal."""
    dataset = "svc_replicas"
    workdir = tmp_path
    store = f"bigquery:{bq_emulator.project}.{dataset}"
    env = {"PIPESTATE_BQ_ENDPOINT": bq_emulator.endpoint}
    config_dir = make_config_dir(workdir)
    try:
        with _trio(workdir, store, config_dir, env=env) as servers:
            with servers[0].client() as client:
                assert (
                    client.post("/api/v1/admin/bootstrap", headers=root_headers()).status_code
                    == 200
                )
            key = create_key(servers[1], ORG)["api_key"]
            run_ids = asyncio.run(_spread(servers, key, BQ_RUNS, "test/bench/noop10"))
        # The servers stopped: each drained its logger and its outbox into BigQuery.
        client = emulator_client(bq_emulator)
        try:
            rows = [
                dict(r.items())
                for r in client.query(
                    "SELECT transition_id, pipeline_logging_id, entity_type, entity_name, "
                    f"from_state, to_state FROM `{bq_emulator.project}.{dataset}."
                    "org_meta_state_transitions` ORDER BY transition_time, transition_id"
                ).result()
            ]
        finally:
            client.close()
        assert len(rows) == BQ_RUNS * 22
        _check_chains(rows, set(run_ids), steps_per_run=10)
    finally:
        drop_dataset(bq_emulator, dataset)
