"""Alert evaluation (rules -> firings, in SQL on the store) and incidents (fire, remind, resolve).

Each rule kind has one small evaluator: it binds the rule's numbers as parameters, runs its
statement from persistence/watch/_sql.py and turns rows into Firing records with a dedup key.
An incident is the life of one dedup key: FIRED once, REMINDED every remind_after_minutes while
it still fires, RESOLVED when it stops; each is a row in org_meta_alerts and a notification.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from classifier import redact
from persistence.stores.base import ALERTS, Store
from persistence.watch._sql import statement
from persistence.watch.recovery import as_utc
from persistence.watch.rules import (
    AlertConfig,
    FailureRateRule,
    PermanentFailureRule,
    RetriesExhaustedRule,
    Rule,
    StuckRule,
)

FIRED, REMINDED, RESOLVED = "FIRED", "REMINDED", "RESOLVED"
INCIDENT_LOOKBACK_DAYS = 30


@attrs.frozen(kw_only=True)
class Firing:
    """One alert condition that holds right now, identified by its dedup key."""

    rule_name: str
    rule_kind: str
    severity: str
    dedup_key: str
    summary: str
    org_slug: str | None = None
    pipeline_logging_id: str | None = None
    entity_name: str | None = None
    error_type: str | None = None
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class AlertEvent:
    """A FIRED / REMINDED / RESOLVED step of an incident, as written and notified."""

    event: str
    incident_id: str
    firing: Firing
    at: dt.datetime

    @property
    def title(self) -> str:
        """The notification title: '[pipestate] FIRED critical: permanent-failure'."""
        return f"[pipestate] {self.event} {self.firing.severity}: {self.firing.rule_name}"

    def to_row(self) -> dict[str, Any]:
        """The org_meta_alerts row."""
        import json

        f = self.firing
        return {
            "alert_id": self.incident_id if self.event == FIRED else str(uuid.uuid4()),
            "incident_id": self.incident_id,
            "dedup_key": f.dedup_key,
            "rule_name": f.rule_name,
            "rule_kind": f.rule_kind,
            "event": self.event,
            "severity": f.severity,
            "org_slug": f.org_slug,
            "pipeline_logging_id": f.pipeline_logging_id,
            "entity_name": f.entity_name,
            "error_type": f.error_type,
            "summary": f.summary,
            "details": json.dumps(f.details, sort_keys=True, default=str),
            "alert_time": self.at.isoformat(),
            "alert_date": self.at.date().isoformat(),
        }


def _window(now: dt.datetime, minutes: float) -> dict[str, Any]:
    start = now - dt.timedelta(minutes=minutes)
    return {"window_start": start, "since": start.date()}


def _stuck(store: Store, rule: StuckRule, now: dt.datetime, limit: int) -> list[Firing]:
    params = {
        "since": (now - dt.timedelta(days=rule.lookback_days)).date(),
        "running_since": now - dt.timedelta(minutes=rule.running_for_minutes),
        "limit": limit,
    }
    out = []
    for row in _run(store, "stuck", params):
        if row["entity_type"] not in rule.entity_types:
            continue
        since = as_utc(row["running_since"])
        expires = row.get("lease_expires_at")
        alive = expires is None or (not row.get("lease_ended") and as_utc(expires) >= now)
        kind = "hung" if alive else "orphaned"
        minutes = round((now - since).total_seconds() / 60.0, 1)
        entity = row["step_logging_id"] or "pipeline"
        what = f"{row['entity_type'].lower()} {row['entity_name']}"
        lease = "no lease" if expires is None else f"lease {'alive' if alive else 'dead'}"
        out.append(
            Firing(
                rule_name=rule.name,
                rule_kind=rule.kind,
                severity=rule.severity,
                dedup_key=f"stuck:{rule.name}:{kind}:{row['pipeline_logging_id']}:{entity}",
                summary=(
                    f"{kind}: {what} of run {row['pipeline_logging_id']} RUNNING for "
                    f"{minutes} min ({lease})"
                ),
                org_slug=row["org_slug"],
                pipeline_logging_id=row["pipeline_logging_id"],
                entity_name=row["entity_name"],
                details={
                    "kind": kind,
                    "entity_type": row["entity_type"],
                    "step_logging_id": row["step_logging_id"],
                    "running_since": since.isoformat(),
                    "lease_expires_at": None if expires is None else as_utc(expires).isoformat(),
                    "owner_host": row.get("owner_host"),
                    "owner_pid": None if row.get("owner_pid") is None else int(row["owner_pid"]),
                },
            )
        )
    return out


def _failure_rate(
    store: Store, rule: FailureRateRule, now: dt.datetime, limit: int
) -> list[Firing]:
    params = {**_window(now, rule.window_minutes), "pipeline": rule.pipeline or ""}
    counts = {row["error_type"]: int(row["n"]) for row in _run(store, "failure_rate", params)}
    total = sum(counts.values())
    out = []
    for error_type, failures in sorted(counts.items(), key=lambda kv: str(kv[0])):
        if error_type is None or (rule.error_type and error_type != rule.error_type):
            continue
        rate = failures / total
        if failures < rule.min_count or rate < rule.threshold:
            continue
        scope = rule.pipeline or "*"
        out.append(
            Firing(
                rule_name=rule.name,
                rule_kind=rule.kind,
                severity=rule.severity,
                dedup_key=f"failure_rate:{rule.name}:{error_type}:{scope}",
                summary=(
                    f"{failures} of {total} pipeline runs ({rate:.0%}) ended {error_type} in the "
                    f"last {rule.window_minutes:g} min"
                    + (f" (pipeline {rule.pipeline})" if rule.pipeline else "")
                ),
                entity_name=rule.pipeline,
                error_type=error_type,
                details={"failures": failures, "total": total, "rate": round(rate, 4)},
            )
        )
    return out[:limit]


def _retries_exhausted(
    store: Store, rule: RetriesExhaustedRule, now: dt.datetime, limit: int
) -> list[Firing]:
    params = {**_window(now, rule.window_minutes), "min_retries": rule.min_retries, "limit": limit}
    return [
        Firing(
            rule_name=rule.name,
            rule_kind=rule.kind,
            severity=rule.severity,
            dedup_key=f"retries_exhausted:{rule.name}:{row['step_logging_id']}",
            summary=(
                f"step {row['entity_name']} of run {row['pipeline_logging_id']} failed "
                f"{row['error_type']} after {int(row['retry_count'])} retries"
            ),
            org_slug=row["org_slug"],
            pipeline_logging_id=row["pipeline_logging_id"],
            entity_name=row["entity_name"],
            error_type=row["error_type"],
            details={
                "step_logging_id": row["step_logging_id"],
                "retry_count": int(row["retry_count"]),
                "failed_at": as_utc(row["transition_time"]).isoformat(),
            },
        )
        for row in _run(store, "retries_exhausted", params)
    ]


def _permanent(
    store: Store, rule: PermanentFailureRule, now: dt.datetime, limit: int
) -> list[Firing]:
    params = {**_window(now, rule.window_minutes), "error_type": rule.error_type, "limit": limit}
    out = []
    for row in _run(store, "permanent_failure", params):
        message = redact(str(row.get("error_message") or ""))[:300]
        out.append(
            Firing(
                rule_name=rule.name,
                rule_kind=rule.kind,
                severity=rule.severity,
                dedup_key=f"permanent_failure:{rule.name}:{row['pipeline_logging_id']}",
                summary=(
                    f"pipeline {row['entity_name']} run {row['pipeline_logging_id']} failed "
                    f"{row['error_type']}: {message}"
                ),
                org_slug=row["org_slug"],
                pipeline_logging_id=row["pipeline_logging_id"],
                entity_name=row["entity_name"],
                error_type=row["error_type"],
                details={"failed_at": as_utc(row["transition_time"]).isoformat()},
            )
        )
    return out


EVALUATORS: Mapping[type[Any], Callable[[Store, Any, dt.datetime, int], list[Firing]]] = {
    StuckRule: _stuck,
    FailureRateRule: _failure_rate,
    RetriesExhaustedRule: _retries_exhausted,
    PermanentFailureRule: _permanent,
}


def _run(store: Store, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = store.run_sql(statement(store, name), params)  # type: ignore[attr-defined]
    return rows


def evaluate(
    store: Store, rules: Sequence[Rule], *, now: dt.datetime | None = None, limit: int = 500
) -> list[Firing]:
    """Every firing of every rule, ordered by dedup key."""
    now = now or dt.datetime.now(dt.UTC)
    firings: list[Firing] = []
    for rule in rules:
        firings.extend(EVALUATORS[type(rule)](store, rule, now, limit))
    return sorted(firings, key=lambda f: f.dedup_key)


def open_incidents(store: Store, *, now: dt.datetime) -> list[dict[str, Any]]:
    """Incidents FIRED and not RESOLVED (alert rows of the last 30 days)."""
    since = (now - dt.timedelta(days=INCIDENT_LOOKBACK_DAYS)).date()
    return _run(store, "open_incidents", {"since": since})


def advance_incidents(
    store: Store, config: AlertConfig, firings: Sequence[Firing], *, now: dt.datetime
) -> list[AlertEvent]:
    """Write FIRED / REMINDED / RESOLVED rows for this cycle's firings and return the events."""
    remind_after = dt.timedelta(minutes=config.remind_after_minutes)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for incident in open_incidents(store, now=now):
        by_key.setdefault(str(incident["dedup_key"]), []).append(incident)
    events: list[AlertEvent] = []
    firing_keys = set()
    for firing in firings:
        firing_keys.add(firing.dedup_key)
        current = by_key.get(firing.dedup_key)
        if not current:
            events.append(
                AlertEvent(event=FIRED, incident_id=str(uuid.uuid4()), firing=firing, at=now)
            )
        elif now - as_utc(current[0]["last_notified_at"]) >= remind_after:
            events.append(
                AlertEvent(
                    event=REMINDED,
                    incident_id=str(current[0]["incident_id"]),
                    firing=firing,
                    at=now,
                )
            )
    for key, incidents in by_key.items():
        if key in firing_keys:
            continue
        for incident in incidents:
            cleared = Firing(
                rule_name=str(incident["rule_name"]),
                rule_kind=key.split(":", 1)[0],
                severity="info",
                dedup_key=key,
                summary=f"resolved: {incident.get('summary') or key}",
            )
            events.append(
                AlertEvent(
                    event=RESOLVED, incident_id=str(incident["incident_id"]), firing=cleared, at=now
                )
            )
    if events:
        result = store.write_batch(ALERTS, [e.to_row() for e in events])
        if result.rejected:
            raise ValueError(f"alert rows rejected: {result.rejected[0].message}")
    return events
