"""Request and response bodies: the OpenAPI schema at /openapi.json is the API's contract."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Org slugs and key labels follow the executor's identifier rule.
SLUG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"


class Problem(BaseModel):
    """RFC 9457 problem details (application/problem+json)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


class BootstrapResult(BaseModel):
    """What bootstrap did: tables created, tables already there, the actions run."""

    created: list[str]
    existing: list[str]
    actions: list[str]
    changed: bool


class KeyCreate(BaseModel):
    """A new org key: which org, and an optional label."""

    model_config = ConfigDict(extra="forbid")

    org_slug: str = Field(pattern=SLUG_PATTERN, examples=["test_org"])
    name: str | None = Field(default=None, pattern=SLUG_PATTERN, examples=["ci"])


class KeyInfo(BaseModel):
    """A key as listings show it: never the key or its hash."""

    key_id: str
    org_slug: str
    key_prefix: str
    name: str | None
    created_at: str | None
    revoked_at: str | None
    active: bool


class KeyCreated(KeyInfo):
    """A created key, with the key itself (shown this once, never again)."""

    api_key: str


class KeyList(BaseModel):
    """Keys of one org, or of every org."""

    keys: list[KeyInfo]


class RunAccepted(BaseModel):
    """A run request's answer: the run id, where to follow it, its state so far."""

    pipeline_logging_id: str
    org_slug: str
    pipeline: str
    state: str
    status_url: str
    error_type: str | None = None
    error_message: str | None = None
    step_states: dict[str, str] = Field(default_factory=dict)


class TimelineEntry(BaseModel):
    """One stored transition of a run."""

    transition_time: str | None
    entity_type: str | None
    entity_name: str | None
    from_state: str | None
    to_state: str | None
    duration_seconds: float | None
    reason: str | None


class RunDetail(BaseModel):
    """A run: its state, its steps' states and its stored timeline."""

    pipeline_logging_id: str
    org_slug: str
    pipeline_id: str | None
    state: str
    live: bool = Field(description="True while this process is running it")
    steps: dict[str, str]
    timeline: list[TimelineEntry]


class RunSummary(BaseModel):
    """One row of the runs listing."""

    pipeline_logging_id: str
    pipeline_id: str | None
    state: str | None
    start_time: str | None
    end_time: str | None
    duration_seconds: float | None
    error_type: str | None
    cancelled: bool | None


class RunList(BaseModel):
    """Recent runs of an org, newest first."""

    runs: list[RunSummary]


class CancelResult(BaseModel):
    """What a cancel did."""

    pipeline_logging_id: str
    cancelled: bool
    state: str


class QueryResult(BaseModel):
    """Rows of one analysis query, filtered to the org."""

    query: str
    org_slug: str
    rows: list[dict[str, Any]]


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    checks: dict[str, Any] = Field(default_factory=dict)
