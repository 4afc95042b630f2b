"""The fast paths against a real `pipestate serve`: clean submits and reads are answered at the
edge exactly as the routes answer them; every unclean request reaches the route and its errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pipestate.service.models import RunAccepted, RunDetail
from tests.service_support import Server, create_key, run_limited_server

NOOP = "/api/v1/pipelines/run/{org}/test/bench/noop10"
SLOW = "/api/v1/pipelines/run/{org}/test/slow/slow"
TEMPLATE = "/api/v1/pipelines/run/{org_slug}/{provider}/{domain}/{pipeline}"
READ_TEMPLATE = "/api/v1/runs/{org_slug}/{pipeline_logging_id}"


@pytest.fixture(scope="module")
def service_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own (its counters are this module's): per-org limit 2."""
    with run_limited_server(tmp_path_factory.mktemp("fast_paths")) as server:
        yield server


@pytest.fixture(scope="module")
def keys(service_server: Server) -> dict[str, str]:
    """Keys of two orgs, each used once so the server's key cache knows them."""
    made = {org: str(create_key(service_server, org)["api_key"]) for org in ("fast_a", "fast_b")}
    with service_server.client() as client:
        for org, key in made.items():
            warm = client.post(NOOP.format(org=org) + "?wait=true", headers={"X-API-Key": key})
            assert warm.status_code == 200, warm.text
    return made


def _metric(client: httpx.Client, prefix: str) -> float:
    """The value of the first /metrics sample line starting with `prefix` (0 if none)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _fast(client: httpx.Client, route: str = TEMPLATE) -> float:
    return _metric(client, f'pipestate_http_fast_answers_total{{route="{route}"}}')


class TestCleanSubmits:
    """A clean submit is answered by the fast path with the route's body, status and metrics."""

    def test_wait_true_answers_200_with_the_finished_run(
        self, service_server: Server, keys: dict[str, str]
    ) -> None:
        """?wait=true with a JSON object body: 200, a valid RunAccepted, every step COMPLETED."""
        timed = f'pipestate_http_request_duration_seconds_count{{method="POST",route="{TEMPLATE}",'
        with service_server.client(headers={"X-API-Key": keys["fast_a"]}) as client:
            fast, count = _fast(client), _metric(client, timed)
            response = client.post(
                NOOP.format(org="fast_a") + "?wait=true&timeout=30", json={"date": "2025-12-01"}
            )
            assert _fast(client) == fast + 1
            assert _metric(client, timed) == count + 1  # timed under the route's template
            run = client.get(response.json()["status_url"]).json()
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = RunAccepted.model_validate(response.json())
        assert (body.org_slug, body.pipeline, body.state) == (
            "fast_a",
            "test/bench/noop10",
            "COMPLETED",
        )
        assert body.step_states == {f"s{i}": "COMPLETED" for i in range(10)}
        assert body.status_url == f"/api/v1/runs/fast_a/{body.pipeline_logging_id}"
        assert run["state"] == "COMPLETED"

    def test_plain_submit_answers_202_and_the_run_completes(
        self, service_server: Server, keys: dict[str, str]
    ) -> None:
        """No body, no query: 202 with the run's id; following it shows the run COMPLETED."""
        with service_server.client(headers={"X-API-Key": keys["fast_b"]}) as client:
            fast, reads = _fast(client), _fast(client, READ_TEMPLATE)
            response = client.post(NOOP.format(org="fast_b"))
            assert _fast(client) == fast + 1
            assert response.status_code == 202, response.text
            followed = client.get(response.json()["status_url"] + "?wait=true")
            assert _fast(client, READ_TEMPLATE) == reads + 1  # a run held in memory
        assert RunAccepted.model_validate(response.json()).org_slug == "fast_b"
        detail = RunDetail.model_validate(followed.json())
        assert (detail.state, detail.live, detail.pipeline_id) == ("COMPLETED", False, "noop10")
        assert detail.steps == {f"s{i}": "COMPLETED" for i in range(10)}
        assert len(detail.timeline) == 2 * 11  # PENDING -> RUNNING -> COMPLETED, 11 entities

    def test_admission_refusal_is_the_routes_problem(
        self, service_server: Server, keys: dict[str, str]
    ) -> None:
        """Over the org's share (2), the fast path answers the route's 429 problem+json."""
        started: list[str] = []
        with service_server.client(headers={"X-API-Key": keys["fast_a"]}) as client:
            try:
                for _ in range(2):
                    response = client.post(SLOW.format(org="fast_a"))
                    assert response.status_code == 202, response.text
                    started.append(response.json()["pipeline_logging_id"])
                fast = _fast(client)
                refused = client.post(SLOW.format(org="fast_a"))
                assert _fast(client) == fast + 1
            finally:
                for run_id in started:
                    client.post(f"/api/v1/runs/fast_a/{run_id}/cancel")
                for run_id in started:
                    client.get(f"/api/v1/runs/fast_a/{run_id}?wait=true")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "urn:pipestate:problem:too-many-running"
        assert "per org" in refused.json()["detail"]


A_RUN = NOOP.format(org="fast_a")
JSON = {"content-type": "application/json"}
# (what is unclean, the org whose key is sent (None: no key), URL, more request args, the route's
# status): the runs are fast_a's throughout.
UNCLEAN: list[tuple[str, str | None, str, dict[str, Any], int]] = [
    ("no key", None, A_RUN, {}, 401),
    ("another org's key", "fast_b", A_RUN, {}, 403),
    ("a segment off the identifier rule", "fast_a", A_RUN.replace("noop10", "no$p"), {}, 422),
    ("a wait value only FastAPI reads", "fast_a", A_RUN + "?wait=yes", {}, 200),
    ("a timeout out of range", "fast_a", A_RUN + "?timeout=0", {}, 422),
    ("an unknown query parameter", "fast_a", A_RUN + "?wait=1&x=1", {}, 200),
    ("a JSON array body", "fast_a", A_RUN, {"json": [1]}, 422),
    ("broken JSON", "fast_a", A_RUN, {"content": b'{"date": ', "headers": JSON}, 422),
    ("a body over the limit", "fast_a", A_RUN, {"json": {"pad": "x" * 70_000}}, 413),
]
UNKNOWN_RUN = "/api/v1/runs/fast_a/00000000-0000-4000-8000-000000000000"
# The same for reads (GET): (what, key org, URL, the route's status).
UNCLEAN_READS: list[tuple[str, str | None, str, int]] = [
    ("a run only the store could know", "fast_a", UNKNOWN_RUN, 404),
    ("no key", None, UNKNOWN_RUN, 401),
    ("another org's key", "fast_b", UNKNOWN_RUN, 403),
    ("a run id off the identifier rule", "fast_a", "/api/v1/runs/fast_a/bad$id", 422),
    ("a wait value only FastAPI reads", "fast_a", UNKNOWN_RUN + "?wait=on", 404),
]


class TestUncleanRequests:
    """Whatever is not a clean submit goes to the route, which gives its own answer."""

    @pytest.mark.parametrize(
        ("what", "key_org", "url", "more", "status"), UNCLEAN, ids=[case[0] for case in UNCLEAN]
    )
    def test_falls_back_to_the_route(
        self,
        service_server: Server,
        keys: dict[str, str],
        what: str,
        key_org: str | None,
        url: str,
        more: dict[str, Any],
        status: int,
    ) -> None:
        """The fast path leaves the request alone (counter unchanged); the route's status holds."""
        headers = {**more.get("headers", {}), **({"X-API-Key": keys[key_org]} if key_org else {})}
        with service_server.client() as client:
            fast = _fast(client)
            response = client.post(url, **{**more, "headers": headers})
            assert _fast(client) == fast, what
        assert response.status_code == status, response.text
        if status >= 400:
            assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize(
        ("what", "key_org", "url", "status"), UNCLEAN_READS, ids=[c[0] for c in UNCLEAN_READS]
    )
    def test_read_falls_back_to_the_route(
        self,
        service_server: Server,
        keys: dict[str, str],
        what: str,
        key_org: str | None,
        url: str,
        status: int,
    ) -> None:
        """A read the fast path cannot answer from memory reaches the route, with its status."""
        headers = {"X-API-Key": keys[key_org]} if key_org else {}
        with service_server.client() as client:
            fast = _fast(client, READ_TEMPLATE)
            response = client.get(url, headers=headers)
            assert _fast(client, READ_TEMPLATE) == fast, what
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"

    def test_another_orgs_key_cannot_read_a_run_held_in_memory(
        self, service_server: Server, keys: dict[str, str]
    ) -> None:
        """fast_b's key on fast_a's live run is the route's 403, never the run (isolation)."""
        with service_server.client() as client:
            run = client.post(A_RUN + "?wait=true", headers={"X-API-Key": keys["fast_a"]}).json()
            url = f"/api/v1/runs/fast_a/{run['pipeline_logging_id']}"
            other = client.get(url, headers={"X-API-Key": keys["fast_b"]})
            wrong_org = client.get(
                url.replace("/fast_a/", "/fast_b/"), headers={"X-API-Key": keys["fast_b"]}
            )
        assert other.status_code == 403
        assert wrong_org.status_code == 404  # fast_b's own org: no such run there
        for leaked in ("noop10", "COMPLETED", "timeline", "s0"):  # nothing of the run itself
            assert leaked not in other.text + wrong_org.text
