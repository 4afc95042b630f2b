"""statemachine.machines: the engine's bookkeeping on each edge (times, counts, reasons, guards)."""

from __future__ import annotations

import datetime as dt
import itertools

import attrs
import pytest
import structlog

from classifier import ErrorType, RetryPolicy, get_retry_delay
from statemachine import InMemorySink, ManualClock, PipelineRun, StepRun
from statemachine.errors import IllegalTransition, JointRuleViolation
from statemachine.joint import (
    COMPLETE_NEEDS_COMPLETED_STEPS,
    JOINT_RULES,
    NOTHING_AFTER_PIPELINE_END,
    STEP_NEEDS_RUNNING_PIPELINE,
)
from statemachine.machines import (
    ENGINES,
    PIPELINE_ENGINE,
    STEP_ENGINE,
    TransitionEngine,
    build_machine,
    direct_edges,
    sink_failure_count,
)
from statemachine.spec import PIPELINE, STEP
from tests.strategies.events import sequential_ids


class BackwardsClock:
    """A clock whose readings are set by the test, so they can go backwards."""

    def __init__(self) -> None:
        self.ns = 10_000_000_000
        self.wall = dt.datetime(2025, 12, 21, 12, 0, tzinfo=dt.UTC)

    def monotonic_ns(self) -> int:
        """The reading the test set."""
        return self.ns

    def now(self) -> dt.datetime:
        """The wall time the test set."""
        return self.wall


def _run(clock: object | None = None) -> tuple[PipelineRun, InMemorySink]:
    sink = InMemorySink()
    run = PipelineRun.create(
        "etl",
        org_slug="acme",
        sink=sink,
        clock=clock or ManualClock(),  # type: ignore[arg-type]
        id_source=sequential_ids(),
    )
    return run, sink


class TestBuild:
    """build_machine turns a table into a strict, model-less machine."""

    @pytest.mark.parametrize("table", [PIPELINE, STEP], ids=lambda t: t.kind)
    def test_machine_shape(self, table: object) -> None:
        """The machine is named after the kind, has only the table's events and no callbacks."""
        machine = build_machine(table)  # type: ignore[arg-type]
        assert machine.name.strip(": ") == table.kind  # type: ignore[attr-defined]
        assert set(machine.events) == set(table.events)  # type: ignore[attr-defined]
        assert machine.initial == table.initial  # type: ignore[attr-defined]
        assert not machine.ignore_invalid_triggers
        for event in machine.events.values():
            for transitions in event.transitions.values():
                assert all(not t.after for t in transitions)

    def test_engines_by_kind(self) -> None:
        """ENGINES maps each kind to the engine built from its table."""
        assert ENGINES == {"PIPELINE": PIPELINE_ENGINE, "STEP": STEP_ENGINE}
        assert (PIPELINE_ENGINE.table, STEP_ENGINE.table) == (PIPELINE, STEP)
        assert PIPELINE_ENGINE.legal_events("NOWHERE") == ()


class TestEdgeBookkeeping:
    """Each record carries the time spent in the state left and the count after the edge."""

    def test_duration_in_whole_milliseconds(self) -> None:
        """duration_in_state_ms is the monotonic time in the state left, floored to ms."""
        clock = ManualClock()
        run, _ = _run(clock)
        clock.advance(ms=5, ns=999_999)
        assert run.start().duration_in_state_ms == 5
        clock.advance(ms=12)
        assert run.complete().duration_in_state_ms == 12

    def test_clock_going_backwards_gives_zero_duration(self) -> None:
        """A monotonic reading below the entry reading records 0 ms, never a negative."""
        clock = BackwardsClock()
        run, _ = _run(clock)
        clock.ns -= 5_000_000
        assert run.start().duration_in_state_ms == 0

    def test_stamps_never_go_back_within_a_run(self) -> None:
        """A record is stamped no earlier than the latest record of its run (rule 5)."""
        clock = BackwardsClock()
        run, _ = _run(clock)
        first = run.start().transition_time
        clock.wall -= dt.timedelta(seconds=30)
        step = StepRun.create("load", pipeline=run)
        assert step.start().transition_time == first
        clock.wall = first + dt.timedelta(seconds=1)
        assert step.complete().transition_time == first + dt.timedelta(seconds=1)
        assert run.complete().transition_time == first + dt.timedelta(seconds=1)

    def test_entry_time_and_count_follow_the_edge(self) -> None:
        """After an edge the entity's entry times and retry count are the record's."""
        clock = ManualClock()
        run, _ = _run(clock)
        run.start()
        step = StepRun.create("load", pipeline=run)
        step.start()
        clock.advance(ms=3)
        step.retry(error_type="TRANSIENT")
        clock.advance(ms=4)
        record = step.start()
        assert (record.retry_count, step.retry_count) == (1, 1)
        assert record.duration_in_state_ms == 4
        assert step.entered_at == record.transition_time
        assert step.entered_monotonic_ns == clock.monotonic_ns()

    def test_default_reason_names_the_attempt(self) -> None:
        """The retry start's default reason is its table template filled with the new count."""
        run, _ = _run()
        run.start()
        step = StepRun.create("load", pipeline=run)
        step.start()
        template = STEP.edge("RETRYING", "start").reason  # type: ignore[union-attr]
        for count in (1, 2):
            step.retry(error_type="TRANSIENT")
            assert step.start().reason == template.format(retry_count=count)

    def test_caller_reason_and_metadata_scrubbed_on_plain_edges(self) -> None:
        """On a non-error edge the caller's reason and metadata are redacted."""
        run, _ = _run()
        record = run.start(
            reason="go password=hunter2secret", metadata={"dsn": "postgres://u:pw@h/db"}
        )
        assert "hunter2" not in (record.reason or "")
        assert record.reason is not None
        assert record.reason.startswith("go ")
        assert "pw@" not in record.metadata["dsn"]
        assert record.error_type is None
        assert record.error_message is None


class TestGuardMessages:
    """A joint-rule refusal says which steps stand in the way, five at most."""

    def test_lists_five_stuck_steps_then_counts(self) -> None:
        """Completing with seven open steps names the first five and counts the other two."""
        run, sink = _run()
        run.start()
        steps = [StepRun.create(f"s{i}", pipeline=run) for i in range(7)]
        with pytest.raises(JointRuleViolation) as info:
            run.complete()
        listed = ", ".join(f"{s.entity_name}=PENDING" for s in steps[:5])
        assert info.value.blocking == f"steps not COMPLETED: {listed} and 2 more"
        assert run.state == "RUNNING"
        assert [r.to_state for r in sink.records] == ["RUNNING"]

    def test_five_stuck_steps_have_no_count(self) -> None:
        """Exactly five open steps are all named, with no 'more'."""
        run, _ = _run()
        run.start()
        for i in range(5):
            StepRun.create(f"s{i}", pipeline=run)
        with pytest.raises(JointRuleViolation) as info:
            run.fail(error_type="PERMANENT")
        listed = ", ".join(f"s{i}=PENDING" for i in range(5))
        assert info.value.blocking == f"steps not COMPLETED/FAILED: {listed}"
        assert (info.value.entity, info.value.state) == ("etl", "RUNNING")

    def test_six_stuck_steps_count_one_more(self) -> None:
        """Six open steps name five and count one more."""
        run, _ = _run()
        run.start()
        for i in range(6):
            StepRun.create(f"s{i}", pipeline=run)
        with pytest.raises(JointRuleViolation) as info:
            run.complete()
        assert info.value.blocking.endswith("s4=PENDING and 1 more")

    def test_step_guard_names_the_pipeline_state(self) -> None:
        """A step refused by its pipeline's state names that state and the step's own."""
        run, _ = _run()
        step = StepRun.create("load", pipeline=run)
        with pytest.raises(JointRuleViolation) as info:
            step.start()
        err = info.value
        assert err.blocking == "its pipeline is PENDING"
        assert (err.entity, err.event) == ("load", "start")
        rule = STEP_NEEDS_RUNNING_PIPELINE
        assert (err.rule, err.rule_number, err.rule_text) == (rule.name, rule.number, rule.text)
        assert (err.state, err.kind, err.entity_id) == ("PENDING", "step", step.step_logging_id)
        assert err.legal_events == STEP.legal_events("PENDING")


def _bare_step(run: PipelineRun, name: str = "load") -> StepRun:
    """A StepRun of `run` that no engine has registered yet."""
    clock = run.clock
    return StepRun(
        entity_name=name,
        org_slug=run.org_slug,
        pipeline_logging_id=run.pipeline_logging_id,
        step_logging_id=run.id_source(),
        sink=run.sink,
        clock=clock,
        id_source=run.id_source,
        entered_monotonic_ns=clock.monotonic_ns(),
        entered_at=clock.now(),
        pipeline=run,
    )


class TestFreshEngines:
    """An engine built now behaves like the ones built at import (tables, rules, reasons)."""

    def test_defaults(self) -> None:
        """A new engine enforces every joint rule, stamps, and has counted no sink failure."""
        for table in (PIPELINE, STEP):
            engine = TransitionEngine(table)
            assert engine.rules == JOINT_RULES
            assert engine.stamp is True
            assert engine.sink_failures == 0
            assert engine.table is table

    def test_reasons_on_every_edge(self) -> None:
        """Default reasons are the table's: plain text as written, templates filled in."""
        pipes, steps = TransitionEngine(PIPELINE), TransitionEngine(STEP)
        run, _ = _run()
        assert pipes.fire(run, "start").reason == PIPELINE.edge("PENDING", "start").reason  # type: ignore[union-attr]
        step = StepRun.create("load", pipeline=run)
        assert steps.fire(step, "start").reason == STEP.edge("PENDING", "start").reason  # type: ignore[union-attr]
        steps.fire(step, "retry", None, "TRANSIENT")
        template = STEP.edge("RETRYING", "start").reason  # type: ignore[union-attr]
        assert steps.fire(step, "start").reason == template.format(retry_count=1)
        assert steps.fire(step, "complete").reason == STEP.edge("RUNNING", "complete").reason  # type: ignore[union-attr]
        assert pipes.fire(run, "complete").reason == PIPELINE.edge("RUNNING", "complete").reason  # type: ignore[union-attr]

    def test_guards_and_kind_words(self) -> None:
        """A new engine refuses by the joint rules and names the entity's kind in lower case."""
        pipes, steps = TransitionEngine(PIPELINE), TransitionEngine(STEP)
        run, _ = _run()
        step = StepRun.create("load", pipeline=run)
        with pytest.raises(JointRuleViolation) as info:
            steps.fire(step, "start")
        assert (info.value.rule_number, info.value.kind) == (1, "step")
        pipes.fire(run, "start")
        with pytest.raises(JointRuleViolation) as info:
            pipes.fire(run, "complete")
        assert (info.value.rule_number, info.value.kind) == (2, "pipeline")
        with pytest.raises(JointRuleViolation) as info:
            pipes.fire(run, "time_out")
        assert info.value.rule_number == 3
        with pytest.raises(IllegalTransition) as plain:
            pipes.fire(run, "start")
        assert plain.value.kind == "pipeline"

    def test_creation_guard(self) -> None:
        """A new step engine refuses to attach a step to a finished run (rule 4), else attaches."""
        steps = TransitionEngine(STEP)
        run, _ = _run()
        run.start()
        early = _bare_step(run, "early")
        steps.register(early, run)
        assert run.steps == (early,)
        early.start()
        early.complete()
        run.complete()
        late = _bare_step(run, "late")
        with pytest.raises(JointRuleViolation) as info:
            steps.register(late, run)
        assert (info.value.rule_number, info.value.state) == (4, "ABSENT")
        assert run.steps == (early,)

    def test_stamping_on_a_new_engine(self) -> None:
        """A new engine stamps a run's records no earlier than the run's latest one."""
        clock = BackwardsClock()
        run, _ = _run(clock)
        first = TransitionEngine(PIPELINE).fire(run, "start").transition_time
        clock.wall -= dt.timedelta(minutes=1)
        step = StepRun.create("load", pipeline=run)
        assert TransitionEngine(STEP).fire(step, "start").transition_time == first

    def test_sink_failures_counted_per_engine(self) -> None:
        """A failing sink counts once on the engine that fired, and in sink_failure_count."""
        engine = TransitionEngine(STEP)
        run = PipelineRun.create("p", org_slug="o", sink=RaisingSink(), clock=ManualClock())
        before = sink_failure_count()
        run.start()
        step = StepRun.create("load", pipeline=run)
        record = engine.fire(step, "start")
        assert record.to_state == step.state == "RUNNING"
        assert engine.sink_failures == 1
        assert sink_failure_count() == before + 1
        step.complete()
        assert sink_failure_count() == before + 2


class RaisingSink:
    """A sink whose emit always raises."""

    def emit(self, record: object) -> None:
        """Fail."""
        raise OSError("disk full")


class TestSinkFailureLog:
    """The warning for a failed sink names the sink, the record and the error."""

    def test_fields(self) -> None:
        """Every field of the warning comes from the sink, the record or the exception."""
        run = PipelineRun.create("p", org_slug="o", sink=RaisingSink(), clock=ManualClock())
        with structlog.testing.capture_logs() as logs:
            record = run.start()
        (entry,) = logs
        assert entry == {
            "event": "transition_sink_failed",
            "log_level": "warning",
            "sink": "RaisingSink",
            "transition_id": record.transition_id,
            "entity_type": "PIPELINE",
            "entity_name": "p",
            "from_state": "PENDING",
            "to_state": "RUNNING",
            "error": repr(OSError("disk full")),
        }


class TestEntityLegalEvents:
    """An entity's legal events are its table's in its current state."""

    def test_follow_the_state(self) -> None:
        """legal_events() of a run and a step change with their states."""
        run, _ = _run()
        step = StepRun.create("load", pipeline=run)
        assert run.legal_events() == PIPELINE.legal_events("PENDING")
        assert step.legal_events() == STEP.legal_events("PENDING")
        run.start()
        step.start()
        assert run.legal_events() == PIPELINE.legal_events("RUNNING")
        assert step.legal_events() == STEP.legal_events("RUNNING")
        step.complete()
        assert step.legal_events() == ()


class TestEveryGuardChecked:
    """When several rules guard one edge, each is checked, whatever their order."""

    def test_step_rules_in_any_order(self) -> None:
        """With rule 4 listed before rule 1, a step of a PENDING run still may not start."""
        engine = TransitionEngine(
            STEP, rules=(NOTHING_AFTER_PIPELINE_END, STEP_NEEDS_RUNNING_PIPELINE)
        )
        run, _ = _run()
        step = StepRun.create("load", pipeline=run)
        with pytest.raises(JointRuleViolation) as info:
            engine.fire(step, "start")
        assert info.value.rule_number == STEP_NEEDS_RUNNING_PIPELINE.number
        assert step.state == "PENDING"

    def test_pipeline_rules_in_any_order(self) -> None:
        """A looser pipeline rule that holds does not stop a stricter one after it."""
        looser = attrs.evolve(COMPLETE_NEEDS_COMPLETED_STEPS, number=9, steps_in=STEP.terminal)
        engine = TransitionEngine(PIPELINE, rules=(looser, COMPLETE_NEEDS_COMPLETED_STEPS))
        run, _ = _run()
        run.start()
        step = StepRun.create("load", pipeline=run)
        step.fail(error_type="PERMANENT")
        with pytest.raises(JointRuleViolation) as info:
            engine.fire(run, "complete")
        assert info.value.rule_number == COMPLETE_NEEDS_COMPLETED_STEPS.number
        assert run.state == "RUNNING"


class TestRetryDelayOnRecords:
    """A retry record's delay is the policy's delay at that record's retry count."""

    def test_second_retry_waits_longer(self) -> None:
        """After one retry, the next retry's delay is get_retry_delay at count 1, not 0."""
        policy = RetryPolicy(base_delay_seconds=1.0)
        run, _ = _run()
        run.start()
        step = StepRun.create("load", pipeline=run)
        step.start()
        delays = []
        for _ in range(2):
            record = step.retry(ConnectionError("reset"), policy=policy)
            expected = get_retry_delay(record.retry_count, ErrorType.TRANSIENT, policy)
            assert record.metadata["next_retry_delay_seconds"] == expected
            delays.append(expected)
            step.start()
        assert delays[0] != delays[1]


class LockCheckingSink:
    """Records, for each emitted record, whether the emitting thread holds the run's lock."""

    def __init__(self) -> None:
        self.run: PipelineRun | None = None
        self.held: list[tuple[str, bool]] = []

    def emit(self, record: object) -> None:
        """Note whether the run's lock is held by this thread."""
        assert self.run is not None
        lock = self.run._lock
        self.held.append((record.entity_type, lock._is_owned()))  # type: ignore[attr-defined]


class TestLocks:
    """Step events run under their pipeline's lock; a step without a pipeline still moves."""

    def test_step_events_hold_the_pipeline_lock(self) -> None:
        """Every record, a step's included, is emitted while the run's lock is held."""
        sink = LockCheckingSink()
        run = PipelineRun.create("p", org_slug="o", sink=sink, clock=ManualClock())
        sink.run = run
        run.start()
        step = StepRun.create("load", pipeline=run)
        step.start()
        step.complete()
        run.complete()
        assert sink.held == [
            ("PIPELINE", True),
            ("STEP", True),
            ("STEP", True),
            ("PIPELINE", True),
        ]

    def test_step_without_pipeline_moves(self) -> None:
        """A StepRun built without a pipeline runs its own chain under its own lock."""
        run, sink = _run()
        step = _bare_step(run)
        step._pipeline = None
        assert step.pipeline is None
        assert [step.start().to_state, step.complete().to_state] == ["RUNNING", "COMPLETED"]
        assert [r.to_state for r in sink.records] == ["RUNNING", "COMPLETED"]


class TestEventArguments:
    """Each entity method passes the caller's reason and metadata on to its record."""

    def test_every_event_keeps_caller_values(self) -> None:
        """start, retry, complete, fail and time_out all keep the caller's metadata and reason."""
        run, _ = _run()
        records = [run.start(reason="go", metadata={"k": 0})]
        step = StepRun.create("load", pipeline=run)
        records.append(step.start(reason="s1", metadata={"k": 1}))
        records.append(step.retry(error_type="TRANSIENT", reason="r", metadata={"k": 2}))
        records.append(step.start(reason="s2", metadata={"k": 3}))
        records.append(step.complete(reason="done", metadata={"k": 4}))
        other = StepRun.create("other", pipeline=run)
        records.append(other.fail(error_type="PERMANENT", reason="f", metadata={"k": 5}))
        records.append(run.time_out(reason="late", metadata={"k": 6}))
        assert [r.metadata["k"] for r in records] == list(range(7))
        assert [r.reason for r in records] == ["go", "s1", "r", "s2", "done", "f", "late"]


def _outcomes(engine: TransitionEngine, events: tuple[str, ...]) -> list[object]:
    """Fire `events` on a fresh entity; each record or (exception type, text), and the states."""
    clock = ManualClock()
    sink = InMemorySink()
    run = PipelineRun.create(
        "etl", org_slug="acme", sink=sink, clock=clock, id_source=sequential_ids()
    )
    entity: PipelineRun | StepRun = run
    if engine.table is STEP:
        run.start()
        entity = StepRun.create("load", pipeline=run)
    error = ValueError("boom")
    seen: list[object] = []
    for i, event in enumerate(events):
        clock.advance(ms=7 * i + 3)
        try:
            seen.append(engine.fire(entity, event, error, "TRANSIENT", None, {"i": i}))
        except Exception as exc:  # the same refusal must come out of both paths
            seen.append((type(exc), str(exc)))
        seen.append((entity.state, entity.retry_count, entity.entered_at))
    return [*seen, sink.records]


class TestDirectFiring:
    """Edges fired without transitions' trigger() behave exactly as through it."""

    @pytest.mark.parametrize("table", [PIPELINE, STEP], ids=["pipeline", "step"])
    def test_every_edge_is_direct(self, table: object) -> None:
        """A plain engine fires every edge of its table directly, to the table's destination."""
        engine = TransitionEngine(table, rules=())  # type: ignore[arg-type]
        assert {k: e.dest for k, e in engine._direct.items()} == {
            (e.source, e.event): e.dest
            for e in table.edges  # type: ignore[attr-defined]
        }

    @pytest.mark.parametrize("table", [PIPELINE, STEP], ids=["pipeline", "step"])
    def test_same_records_and_refusals_as_trigger(self, table: object) -> None:
        """Every sequence of up to 3 events gives the same records, errors and states both ways."""
        direct = TransitionEngine(table, rules=())  # type: ignore[arg-type]
        slow = TransitionEngine(table, rules=())  # type: ignore[arg-type]
        slow._direct = {}  # every event through transitions' trigger()
        events = (*table.events, "no_such_event")  # type: ignore[attr-defined]
        for n in (1, 2, 3):
            for seq in itertools.product(events, repeat=n):
                assert _outcomes(direct, seq) == _outcomes(slow, seq), seq

    def test_failed_record_leaves_the_state(self) -> None:
        """If building the record raises, a directly fired edge leaves the entity where it was."""

        def broken_ids() -> str:
            raise RuntimeError("no ids")

        run = PipelineRun.create("etl", org_slug="acme", sink=InMemorySink(), clock=ManualClock())
        run.id_source = broken_ids
        with pytest.raises(RuntimeError, match="no ids"):
            PIPELINE_ENGINE.fire(run, "start")
        assert run.state == "PENDING"

    @pytest.mark.parametrize(
        "add_hook",
        [
            lambda m: m.prepare_event.append(print),
            lambda m: m.before_state_change.append(print),
            lambda m: m.after_state_change.append(print),
            lambda m: m.finalize_event.append(print),
            lambda m: m.states["RUNNING"].on_enter.append(print),
            lambda m: m.states["PENDING"].on_exit.append(print),
            lambda m: m.events["start"].transitions["PENDING"][0].before.append(print),
            lambda m: m.events["start"].transitions["PENDING"][0].after.append(print),
        ],
        ids=["prepare", "before", "after", "finalize", "enter", "exit", "t-before", "t-after"],
    )
    def test_any_other_callback_disables_it(self, add_hook: object) -> None:
        """A machine with any callback besides the record hook fires every edge via trigger()."""
        engine = TransitionEngine(PIPELINE, rules=())
        assert direct_edges(engine.machine, engine._on_edge)
        add_hook(engine.machine)  # type: ignore[operator]
        assert direct_edges(engine.machine, engine._on_edge) == {}
