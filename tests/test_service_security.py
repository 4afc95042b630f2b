"""Tenant isolation and hostile input against a real server: exact statuses, no leaks, no 500s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service_support import (
    ROOT_KEY,
    Server,
    create_key,
    root_headers,
)


@pytest.fixture
def workdir(service_workdir: Path) -> Path:
    """The shared server's directory."""
    return service_workdir


@pytest.fixture(scope="module")
def world(service_server: Server) -> dict[str, Any]:
    """Two orgs with one finished run each, and a revoked key of org_a, on the shared server."""
    server = service_server
    keys = {org: create_key(server, org) for org in ("org_a", "org_b")}
    revoked = create_key(server, "org_a")
    with server.client() as client:
        gone = client.delete(f"/api/v1/admin/keys/{revoked['key_id']}", headers=root_headers())
        assert gone.status_code == 200
        runs = {
            org: client.post(
                f"/api/v1/pipelines/run/{org}/test/success/test_success?wait=true",
                headers={"X-API-Key": keys[org]["api_key"]},
            ).json()["pipeline_logging_id"]
            for org in keys
        }
    return {"server": server, "keys": keys, "revoked": revoked, "runs": runs}


CREDENTIALS = ("none", "malformed", "revoked", "other_org", "root_on_org", "org_on_root")
# Org routes (org_a's) and root routes, and the status each credential must get.
ORG_ROUTES = (
    ("POST", "/api/v1/pipelines/run/org_a/test/success/test_success"),
    ("GET", "/api/v1/runs/org_a/{run_a}"),
    ("GET", "/api/v1/runs/org_a"),
    ("POST", "/api/v1/runs/org_a/{run_a}/cancel"),
    ("GET", "/api/v1/queries/org_a/failures"),
    ("GET", "/api/v1/queries/org_a/timeline?pipeline_logging_id={run_a}"),
)
ROOT_ROUTES = (
    ("POST", "/api/v1/admin/bootstrap"),
    ("POST", "/api/v1/admin/keys"),
    ("GET", "/api/v1/admin/keys"),
    ("DELETE", "/api/v1/admin/keys/0123456789abcdef"),
)
EXPECTED_ORG = {
    "none": 401,
    "malformed": 401,
    "revoked": 401,
    "other_org": 403,
    "root_on_org": 403,
    "org_on_root": 401,  # an org key that is not org_a's... see _headers: no key at all here
}
EXPECTED_ROOT = {
    "none": 401,
    "malformed": 401,
    "revoked": 403,
    "other_org": 403,
    "root_on_org": 401,  # a wrong root key
    "org_on_root": 403,
}


def _headers(world: dict[str, Any], credential: str, *, root_route: bool) -> dict[str, str]:
    keys = world["keys"]
    return {
        "none": {},
        "malformed": {"X-API-Key": "psk_not-a-key"},
        "revoked": {"X-API-Key": world["revoked"]["api_key"]},
        "other_org": {"X-API-Key": keys["org_b"]["api_key"]},
        "root_on_org": (
            {"X-CA-Root-Key": ROOT_KEY[:-1] + "x"} if root_route else {"X-CA-Root-Key": ROOT_KEY}
        ),
        "org_on_root": ({"X-API-Key": keys["org_a"]["api_key"]} if root_route else {}),
    }[credential]


def _leaks(world: dict[str, Any], text: str) -> list[str]:
    """Anything of org_b's (or any secret) that a response body shows."""
    secrets = [world["keys"][o]["api_key"] for o in world["keys"]] + [world["revoked"]["api_key"]]
    return [s for s in [world["runs"]["org_b"], "org_b", *secrets] if s in text]


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_isolation_matrix(world: dict[str, Any], credential: str) -> None:
    """Every endpoint x credential gives its exact status and never another org's data."""
    server: Server = world["server"]
    fill = {"run_a": world["runs"]["org_a"]}
    with server.client() as client:
        for method, path in ORG_ROUTES:
            headers = _headers(world, credential, root_route=False)
            response = client.request(method, path.format(**fill), headers=headers, json={})
            assert response.status_code == EXPECTED_ORG[credential], (method, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert not _leaks(world, response.text)
        for method, path in ROOT_ROUTES:
            headers = _headers(world, credential, root_route=True)
            body = {"org_slug": "org_z"} if path.endswith("keys") else {}
            response = client.request(method, path, headers=headers, json=body)
            assert response.status_code == EXPECTED_ROOT[credential], (method, path, response.text)
            assert not _leaks(world, response.text)


def test_another_orgs_run_is_a_404_like_a_missing_one(world: dict[str, Any]) -> None:
    """org_a reading org_b's run gets exactly the answer for a run that does not exist."""
    server: Server = world["server"]
    headers = {"X-API-Key": world["keys"]["org_a"]["api_key"]}
    other = world["runs"]["org_b"]
    missing = "00000000-0000-4000-8000-000000000000"
    with server.client() as client:
        for template in (
            "/api/v1/runs/org_a/{}",
            "/api/v1/runs/org_a/{}/cancel",
        ):
            method = "POST" if template.endswith("cancel") else "GET"
            theirs = client.request(method, template.format(other), headers=headers)
            nothing = client.request(method, template.format(missing), headers=headers)
            assert theirs.status_code == nothing.status_code == 404
            assert theirs.json() == json.loads(nothing.text.replace(missing, other))
        timeline = client.get(
            "/api/v1/queries/org_a/timeline",
            params={"pipeline_logging_id": other},
            headers=headers,
        )
        listing = client.get("/api/v1/runs/org_a", headers=headers)
        failures = client.get("/api/v1/queries/org_a/runs", headers=headers)
    assert timeline.json()["rows"] == []
    assert other not in listing.text
    assert other not in failures.text
    assert world["runs"]["org_a"] in listing.text


def test_root_key_lists_and_revokes_keys_without_secrets(world: dict[str, Any]) -> None:
    """Key listings never show a key or its hash; a revoked key is listed inactive."""
    server: Server = world["server"]
    with server.client() as client:
        listing = client.get(
            "/api/v1/admin/keys", params={"org_slug": "org_a"}, headers=root_headers()
        )
    assert listing.status_code == 200
    keys = {k["key_id"]: k for k in listing.json()["keys"]}
    assert keys[world["revoked"]["key_id"]]["active"] is False
    assert keys[world["keys"]["org_a"]["key_id"]]["active"] is True
    assert "key_hash" not in listing.text
    assert world["keys"]["org_a"]["api_key"] not in listing.text


HOSTILE_BODIES: tuple[tuple[str, bytes], ...] = (
    ("huge", b'{"a": "' + b"x" * 200_000 + b'"}'),
    ("deep_list", b"[" * 20_000 + b"]" * 20_000),
    ("deep_object", b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
    ("array", b"[1, 2, 3]"),
    ("string", b'"date"'),
    ("number", b"42"),
    ("bad_utf8", b'{"date": "\xff\xfe\xfd"}'),
    ("not_json", b"date=2025-12-01"),
    ("nul_key", b'{"\\u0000": 1}'),
    ("many_keys", json.dumps({f"k{i}": i for i in range(5000)}).encode()),
)


@pytest.mark.parametrize(("name", "body"), HOSTILE_BODIES, ids=[n for n, _ in HOSTILE_BODIES])
def test_hostile_bodies_get_a_clear_4xx(world: dict[str, Any], name: str, body: bytes) -> None:
    """Huge, deep, non-object, non-UTF-8 or non-JSON bodies are a 4xx problem, never a 500."""
    server: Server = world["server"]
    headers = {"X-API-Key": world["keys"]["org_a"]["api_key"], "Content-Type": "application/json"}
    with server.client() as client:
        response = client.post(
            "/api/v1/pipelines/run/org_a/test/success/test_success", content=body, headers=headers
        )
    assert 400 <= response.status_code < 500, response.text[:300]
    problem = response.json()
    assert problem["status"] == response.status_code
    assert problem["detail"]
    if name == "huge":
        assert response.status_code == 413
    with server.client() as client:  # a bad request is not a run: nothing was stored
        listing = client.get("/api/v1/runs/org_a", params={"state": "FAILED"}, headers=headers)
    assert listing.json()["runs"] == []


HOSTILE_PATHS = (
    "/api/v1/pipelines/run/org_a/../../etc/passwd",
    "/api/v1/pipelines/run/org_a/%2e%2e/%2e%2e/passwd",
    "/api/v1/pipelines/run/org_a/test/success/..%2F..%2Fx",
    "/api/v1/pipelines/run/org_a/test/success/" + "a" * 300,
    "/api/v1/pipelines/run/org_a/test/success/x%00y",
    "/api/v1/pipelines/run/org_a/test/success/%27%3B%20DROP%20TABLE%20x",
    "/api/v1/pipelines/run/%C3%A9org/test/success/test_success",
    "/api/v1/runs/org_a/%27%20OR%201%3D1",
    "/api/v1/queries/org_a/drop_tables",
)


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_paths_get_a_4xx(world: dict[str, Any], path: str) -> None:
    """Traversal, NUL, SQL-ish and over-long path segments are refused with a 4xx problem."""
    server: Server = world["server"]
    headers = {"X-API-Key": world["keys"]["org_a"]["api_key"]}
    with server.client() as client:
        method = "POST" if "/pipelines/" in path else "GET"
        response = client.request(method, httpx.URL(server.url + path), headers=headers)
    assert 400 <= response.status_code < 500, response.text[:300]
    assert response.json()["status"] == response.status_code


def test_no_key_is_ever_stored_or_logged(world: dict[str, Any], workdir: Path) -> None:
    """The store file and the server log hold no API key or root key, only hashes."""
    server: Server = world["server"]
    blobs = [p.read_bytes() for p in workdir.glob("audit.db*")]
    blobs.append(server.log.read_bytes())
    secrets = [world["keys"][o]["api_key"] for o in world["keys"]] + [ROOT_KEY]
    for secret in secrets:
        assert all(secret.encode() not in blob for blob in blobs)
