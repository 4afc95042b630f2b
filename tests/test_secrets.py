"""No secret raised, passed or logged by a pipeline is ever stored, in any column of any table."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier import create_error_context, redact
from executor.config import PipelineConfig, RetryDefaults, StepConfig
from executor.processors import ProcessorContext, register, unregister
from executor.runner import PipelineResult, run_pipeline
from persistence import MetadataLogger
from statemachine import PipelineRun, StepRun
from statemachine._scrub import _MAY_HOLD_SECRET, CLEAN_KEYS, scrub_metadata
from tests.strategies.events import running_pipeline
from tests.strategies.hostile import (
    DB_PASSWORD,
    SECRET_MESSAGES,
    SECRET_VALUES,
    all_cells,
    transition_rows,
    with_logger,
)

PROCESSOR = "hostile.leaky"
T0 = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _leaks(db: Path) -> list[tuple[str, str, str]]:
    """(table, column, secret) for every stored cell that contains a secret fragment."""
    found = []
    for table, column, value in all_cells(db):
        text = value if isinstance(value, str) else str(value)
        for secret in SECRET_VALUES:
            if secret in text:
                found.append((table, column, secret[:12]))
    return found


def _secret_metadata(kind: str) -> dict[str, Any]:
    """Metadata hiding the `kind` secret in values, keys, nesting and non-JSON values."""
    secret = SECRET_MESSAGES[kind]
    return {
        "request": secret,
        "headers": {"h": secret, "list": [secret]},
        secret: "secret in a key",
        "blob": secret.encode(),
        "error": ConnectionError(secret),
        "tuple": (secret,),
        "set": {secret},
    }


@pytest.fixture
def leaky_processor() -> Iterator[None]:
    """Register a processor raising the secret-bearing message named by its config."""

    async def leak(context: ProcessorContext, config: Mapping[str, Any]) -> None:
        message = SECRET_MESSAGES[str(config["kind"])]
        if config.get("transient"):
            raise ConnectionError(f"connection reset by peer; {message}")
        raise RuntimeError(message)

    register(PROCESSOR, leak, replace=True)
    try:
        yield
    finally:
        unregister(PROCESSOR)


def _leaky_config(kind: str) -> PipelineConfig:
    """Two independent steps raising the `kind` secret: one permanent, one retried first."""
    return PipelineConfig(
        pipeline_id=f"leak_{kind}",
        retry=RetryDefaults(max_retries=1, base_delay_seconds=0.0, max_delay_seconds=0.0),
        steps=tuple(
            StepConfig(
                step_id=f"{kind}_{'transient' if transient else 'permanent'}",
                processor=PROCESSOR,
                config={"kind": kind, "transient": transient},
            )
            for transient in (False, True)
        ),
    )


class TestPipelineRuns:
    """A real pipeline whose steps raise secret-bearing errors leaves no secret in SQLite."""

    @pytest.mark.usefixtures("leaky_processor")
    @pytest.mark.parametrize("kind", list(SECRET_MESSAGES))
    def test_no_secret_anywhere_after_failing_run(self, tmp_path: Path, kind: str) -> None:
        """Permanent and retried failures raising a `kind` secret: no cell of any table in the
        file holds it, and the failure rows are there (a run that stored nothing would fail)."""
        db = tmp_path / "secrets.db"

        async def body(logger: MetadataLogger) -> PipelineResult:
            return await run_pipeline(_leaky_config(kind), org_slug="o", logger=logger)

        result, depths = with_logger(db, body)
        assert result.state == "FAILED"
        assert depths["state_transition"]["rows_dropped"] == 0
        rows = transition_rows(db)
        assert sum(r["to_state"] == "RETRYING" for r in rows) >= 1
        assert sum(r["to_state"] == "FAILED" for r in rows) == 3
        assert all("***" in r["error_message"] for r in rows if r["to_state"] == "FAILED")
        assert _leaks(db) == []

    @pytest.mark.usefixtures("leaky_processor")
    def test_secret_cut_by_the_pipeline_reason_is_not_half_kept(self, tmp_path: Path) -> None:
        """The pipeline's FAILED reason quotes the first failure; cutting that quote at 160
        characters before redacting keeps the start of a DSN password ('...etl:S3cr3t')."""
        db = tmp_path / "cut.db"
        prefix = "y" * 137  # the 160-character quote ends 5 characters into the password

        async def long_dsn(context: ProcessorContext, config: Mapping[str, Any]) -> None:
            raise RuntimeError(f"{prefix} postgresql://etl:{DB_PASSWORD}@db:5432/x")

        register(PROCESSOR, long_dsn, replace=True)
        config = PipelineConfig(
            pipeline_id="cut",
            retry=RetryDefaults(max_retries=0),
            steps=(StepConfig(step_id="s", processor=PROCESSOR),),
        )

        async def body(logger: MetadataLogger) -> PipelineResult:
            return await run_pipeline(config, org_slug="o", logger=logger)

        with_logger(db, body)
        stored = " ".join(str(v) for _, _, v in all_cells(db))
        assert DB_PASSWORD[:5] not in stored


class TestDirectTransitions:
    """Secrets the caller passes in reason and metadata are masked on every edge."""

    @pytest.mark.parametrize("kind", list(SECRET_MESSAGES))
    def test_every_event_with_secret_reason_and_metadata(self, tmp_path: Path, kind: str) -> None:
        """start / retry / complete / fail / time_out with a `kind` secret in reason, metadata
        and the error: no column of any stored row holds it."""
        db = tmp_path / "direct.db"
        secret = SECRET_MESSAGES[kind]

        async def body(logger: MetadataLogger) -> int:
            kwargs: dict[str, Any] = {"reason": secret, "metadata": _secret_metadata(kind)}
            error = RuntimeError(secret)
            pipeline = PipelineRun.create("p", org_slug="o", sink=logger)
            pipeline.start(**kwargs)
            step = StepRun.create("s", pipeline=pipeline)
            step.start(**kwargs)
            step.retry(ConnectionError(secret), **kwargs)
            step.start(**kwargs)
            step.complete(**kwargs)
            failing = StepRun.create("f", pipeline=pipeline)
            failing.fail(error, **kwargs)
            pipeline.time_out(error, **kwargs)
            other = PipelineRun.create("q", org_slug="o", sink=logger)
            other.start()
            other.fail(error, **kwargs)
            return 9

        count, _ = with_logger(db, body)
        assert len(transition_rows(db)) == count
        assert _leaks(db) == []

    def test_error_without_exception(self, tmp_path: Path) -> None:
        """fail() with no exception uses the reason as error_message: it is masked too (the
        AWS form is left to the per-kind tests)."""
        db = tmp_path / "noexc.db"

        async def body(logger: MetadataLogger) -> None:
            step = StepRun.create("s", pipeline=running_pipeline("p", org_slug="o", sink=logger))
            step.start()
            step.fail(reason=" | ".join(m for k, m in SECRET_MESSAGES.items() if k != "aws"))

        with_logger(db, body)
        assert _leaks(db) == []


class TestSeedLoggingApi:
    """The seed's log_* methods write pipeline_runs, step_logs and transitions directly."""

    @pytest.mark.parametrize(
        "method",
        [
            "log_pipeline_start",
            "log_pipeline_end",
            "log_step_start",
            "log_step_end",
            "log_state_transition",
        ],
    )
    def test_log_methods_store_no_secret(self, tmp_path: Path, method: str) -> None:
        """Secrets in error_message, stack_trace, reason, error_context and metadata of each
        log_* call are masked before the row is stored."""
        db = tmp_path / f"{method}.db"
        secret = SECRET_MESSAGES["dsn"]
        common: dict[str, Any] = {"org_slug": "o", "metadata": _secret_metadata("dsn")}
        context = create_error_context(RuntimeError(secret), "s")
        calls: dict[str, dict[str, Any]] = {
            "log_pipeline_start": {"pipeline_logging_id": "p1", "pipeline_id": "p"},
            "log_pipeline_end": {
                "pipeline_logging_id": "p1",
                "pipeline_id": "p",
                "status": "FAILED",
                "start_time": T0,
                "error_message": secret,
                "error_context": context,
            },
            "log_step_start": {
                "step_logging_id": "s1",
                "pipeline_logging_id": "p1",
                "step_name": "s",
            },
            "log_step_end": {
                "step_logging_id": "s1",
                "pipeline_logging_id": "p1",
                "step_name": "s",
                "status": "FAILED",
                "start_time": T0,
                "error_message": secret,
                "error_context": context,
            },
            "log_state_transition": {
                "pipeline_logging_id": "p1",
                "from_state": "RUNNING",
                "to_state": "FAILED",
                "entity_type": "STEP",
                "entity_name": "s",
                "step_logging_id": "s1",
                "reason": secret,
                "error_type": "PERMANENT",
                "error_message": secret,
                "stack_trace": secret,
            },
        }

        async def body(logger: MetadataLogger) -> None:
            await getattr(logger, method)(**calls[method], **common)

        _, depths = with_logger(db, body)
        written = sum(depths[q]["rows_written"] for q in ("pipeline", "step", "state_transition"))
        assert written == 1
        assert _leaks(db) == []


class TestRedactionScreen:
    """The cheap pre-screen in statemachine._scrub never lets a redactable text through."""

    @pytest.mark.parametrize("kind", list(SECRET_MESSAGES))
    def test_screen_flags_every_secret_kind(self, kind: str) -> None:
        """Every sample secret message is flagged by the screen (so redact() sees it)."""
        assert _MAY_HOLD_SECRET.search(SECRET_MESSAGES[kind])

    @settings(max_examples=100, deadline=None)
    @given(
        st.one_of(
            st.text(max_size=80),
            st.text(alphabet="abcXYZ019/+_-.:=@ ", max_size=80),
            st.builds(
                lambda a, b: a + b,
                st.sampled_from(["Bearer ", "ya29.", "AKIA", "ghp_", "sk-", "xoxb-", "eyJ"]),
                st.text(alphabet="abcdefXYZ0123456789", max_size=40),
            ),
        )
    )
    def test_screen_is_a_superset_of_redact(self, text: str) -> None:
        """If the screen finds nothing in a text, redact() leaves that text unchanged."""
        if _MAY_HOLD_SECRET.search(text) is None:
            assert redact(text) == text

    def test_clean_keys_are_what_redact_leaves_alone(self) -> None:
        """Every metadata key that skips scrubbing is one redact() would return unchanged."""
        assert CLEAN_KEYS
        for key in CLEAN_KEYS:
            assert redact(key) == key

    def test_other_keys_are_still_scrubbed(self) -> None:
        """A key outside the clean set still goes through redact() (a secret key is masked)."""
        scrubbed = scrub_metadata({"password=hunter2": 1, "steps_completed": 2})
        assert scrubbed == {"password=***": 1, "steps_completed": 2}

    def test_screen_skips_ordinary_reasons(self) -> None:
        """Ordinary reasons are not flagged, so they skip the ~10 us redact() call."""
        for reason in ("Pipeline execution started", "Step started", "Retry 2 of 3", "ok"):
            assert _MAY_HOLD_SECRET.search(reason) is None


@pytest.mark.parametrize("kind", list(SECRET_MESSAGES))
def test_redact_masks_every_kind(kind: str) -> None:
    """classifier.redact masks each sample secret and leaves '***' where it was."""
    masked = redact(SECRET_MESSAGES[kind])
    assert "***" in masked
    assert [s for s in SECRET_VALUES if s in masked] == []


def test_dsn_keeps_user_and_host() -> None:
    """Only the password of a DSN is masked: user and host stay for debugging."""
    assert re.search(r"postgresql://etl:\*\*\*@db:5432/x", redact(SECRET_MESSAGES["dsn"]))
