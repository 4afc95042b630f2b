"""`python -m pipestate.demo` (make demo): the seed's scenarios on a fresh embedded SQLite store."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

DEFAULT_DB = "pipestate-demo.db"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
ORG = "test_org"


@attrs.frozen
class Scenario:
    """One demo run: what to run and which transitions the seed expects."""

    title: str
    ref: str
    expected: str


SCENARIOS = (
    Scenario(
        "0. The seed's billing pipeline on an embedded DuckDB file (date 2025-12-01)",
        "local/cost/billing",
        "PIPELINE and 4 STEPs PENDING -> RUNNING -> COMPLETED; cost per service and project, "
        "one anomaly",
    ),
    Scenario(
        "1. Successful pipeline (3 steps, fan-out)",
        "test/success/test_success",
        "PIPELINE PENDING -> RUNNING -> COMPLETED; each STEP PENDING -> RUNNING -> COMPLETED",
    ),
    Scenario(
        "2. Timeout (the seed's test_timeout.yml: 6 s deadline, 30 s step)",
        "test/timeout/test_timeout",
        "PIPELINE PENDING -> RUNNING -> TIMEOUT; STEP PENDING -> RUNNING -> FAILED (TIMEOUT)",
    ),
    Scenario(
        "3a. Validation error: a pipeline that does not exist",
        "invalid/domain/pipeline",
        "PIPELINE PENDING -> RUNNING -> FAILED (VALIDATION_ERROR)",
    ),
    Scenario(
        "3b. Validation error: a config with a bad field",
        "test/validation/test_bad_field",
        "PIPELINE PENDING -> RUNNING -> FAILED (VALIDATION_ERROR)",
    ),
    Scenario(
        "4. Retry: a flaky step succeeds on its third attempt",
        "test/retry/test_retry",
        "STEP RUNNING -> RETRYING (TRANSIENT) twice, then COMPLETED with retry_count 2",
    ),
    Scenario(
        "5. Dependency failure: two downstream steps blocked, one branch independent",
        "test/dependency/test_dependency",
        "extract FAILED (PERMANENT); 2 steps PENDING -> FAILED (DEPENDENCY_FAILURE); "
        "audit_report COMPLETED; PIPELINE FAILED",
    ),
)


def _fresh(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            path.unlink()


async def run_demo(db: Path, config_dir: Path = CONFIG_DIR) -> list[str]:
    """Run every scenario on a fresh store at `db`, printing timelines; return final states."""
    from rich.rule import Rule

    from executor.runner import run_pipeline
    from persistence.logger import MetadataLogger
    from persistence.queries import run_query
    from persistence.stores.sqlite import SQLiteStore
    from pipestate._cli_output import console_for_output, print_rows, print_timeline

    console = console_for_output()
    _fresh(db)
    data_dir = Path(os.environ.setdefault("PIPESTATE_DATA_DIR", str(db.parent)))
    store = SQLiteStore(db)
    states = []
    started = time.monotonic()
    try:
        async with MetadataLogger(store, derive_run_rows=True) as logger:
            for scenario in SCENARIOS:
                console.print(Rule(scenario.title, align="left"))
                console.print(f"[dim]pipestate run {scenario.ref} --org {ORG}[/]")
                console.print(f"expected: {scenario.expected}")
                result = await run_pipeline(
                    scenario.ref,
                    org_slug=ORG,
                    logger=logger,
                    trigger_type="demo",
                    config_dir=config_dir,
                    store=store,
                )
                await logger.flush()
                rows = await asyncio.to_thread(
                    run_query, store, "timeline", pipeline_logging_id=result.pipeline_logging_id
                )
                print_timeline(rows, title=f"timeline ({result.pipeline_logging_id})")
                if scenario.ref == "local/cost/billing" and result.state == "COMPLETED":
                    await asyncio.to_thread(_show_billing, data_dir / "billing.duckdb")
                outcome = f"result: {result.state}"
                if result.error_type:
                    outcome += f" ({result.error_type})"
                console.print(outcome + "\n")
                states.append(result.state)
        console.print(Rule("Failure patterns (the seed's query 2)", align="left"))
        print_rows(await asyncio.to_thread(run_query, store, "failures"), title="failures")
        console.print(Rule("Step-level failures (the seed's query 3)", align="left"))
        print_rows(await asyncio.to_thread(run_query, store, "steps"), title="steps")
    finally:
        store.close()
    console.print(
        f"\n{len(SCENARIOS)} scenarios in {time.monotonic() - started:.1f} s; rows are in {db} "
        f"(try: pipestate query failures --store sqlite:{db})"
    )
    return states


def _show_billing(database: Path) -> None:
    """Print what the billing pipeline computed, read back from its DuckDB file."""
    import duckdb

    from pipestate._cli_output import print_rows

    con = duckdb.connect(str(database), read_only=True)
    try:
        for table, title in (
            ("daily_cost_by_service", "cost per service on 2025-12-01"),
            ("daily_cost_by_project", "cost per project on 2025-12-01"),
            ("cost_anomalies", "anomalies (more than 2x the trailing 7-day average)"),
        ):
            cursor = con.execute(f"SELECT * FROM {table} ORDER BY cost DESC")
            columns = [c[0] for c in cursor.description]
            print_rows(
                [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()], title=title
            )
    finally:
        con.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; exit 0 when every scenario ended as the seed expects."""
    parser = argparse.ArgumentParser(prog="python -m pipestate.demo", description=__doc__)
    parser.add_argument("--db", default=os.environ.get("PIPESTATE_DEMO_DB", DEFAULT_DB))
    args = parser.parse_args(argv)
    from pipestate.cli import configure_logging

    configure_logging(debug=False)
    db = Path(args.db)
    # The billing example's DuckDB file goes next to the demo's store, not into configs/.
    data_dir = db.resolve().parent / f"{db.stem}-data"
    data_dir.mkdir(exist_ok=True)
    os.environ["PIPESTATE_DATA_DIR"] = str(data_dir)
    states = asyncio.run(run_demo(db))
    expected = ["COMPLETED", "COMPLETED", "TIMEOUT", "FAILED", "FAILED", "COMPLETED", "FAILED"]
    return 0 if states == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
