"""statemachine.errors: each refusal reads as a sentence, keeps its details, and pickles."""

from __future__ import annotations

import pickle

from statemachine.errors import (
    IllegalLoggedTransition,
    IllegalTransition,
    InvalidDefinition,
    JointRuleViolation,
)


class TestMessages:
    """The message names the event, kind, entity, a short id and the legal events."""

    def test_illegal_with_and_without_id(self) -> None:
        """An id is shown by its first eight characters; without one nothing is shown."""
        exc = IllegalTransition("etl", "start", "RUNNING", ["complete", "fail"], kind="pipeline")
        assert str(exc) == (
            "Can't start pipeline 'etl' when it is RUNNING; legal events: complete, fail"
        )
        assert exc.entity_id is None
        assert exc.rule is None
        with_id = IllegalTransition("etl", "start", "DONE", [], entity_id="0123456789abc")
        assert (
            str(with_id)
            == "Can't start entity 'etl' (01234567...) when it is DONE; legal events: none"
        )
        assert with_id.kind == "entity"

    def test_joint_message(self) -> None:
        """A joint refusal names the blocking state and the rule by number, name and text."""
        exc = JointRuleViolation(
            "load",
            "start",
            "PENDING",
            ("start", "fail"),
            kind="step",
            entity_id="abcdefghijk",
            rule="r-name",
            rule_number=1,
            rule_text="the text",
            blocking="its pipeline is PENDING",
        )
        expected = (
            "Can't start step 'load' (abcdefgh...) from PENDING: its pipeline is PENDING; "
            "rule 1 (r-name): the text"
        )
        assert str(exc) == expected
        assert exc.args == (expected,)
        assert (exc.rule, exc.rule_number, exc.rule_text) == ("r-name", 1, "the text")
        assert exc.legal_events == ("start", "fail")


class TestPickle:
    """Every error survives pickling with all of its attributes."""

    def test_joint(self) -> None:
        """A JointRuleViolation comes back equal field by field."""
        exc = JointRuleViolation(
            "p",
            "complete",
            "RUNNING",
            ("complete",),
            kind="pipeline",
            entity_id=None,
            rule="r",
            rule_number=2,
            rule_text="t",
            blocking="steps not COMPLETED: a=RUNNING",
        )
        copy = pickle.loads(pickle.dumps(exc))
        fields = ("entity", "event", "state", "legal_events", "kind", "entity_id", "rule")
        assert [getattr(copy, f) for f in fields] == [getattr(exc, f) for f in fields]
        assert (copy.rule_number, copy.rule_text, copy.blocking, str(copy)) == (
            2,
            "t",
            "steps not COMPLETED: a=RUNNING",
            str(exc),
        )

    def test_logged(self) -> None:
        """An IllegalLoggedTransition keeps its message, states, legal events, id and rule."""
        exc = IllegalLoggedTransition(
            "the message",
            entity="e",
            kind="step",
            state="RUNNING",
            to_state="PENDING",
            legal_events=("complete",),
            entity_id="id-9",
            rule="legal-edge",
        )
        copy = pickle.loads(pickle.dumps(exc))
        fields = ("entity", "kind", "state", "to_state", "legal_events", "entity_id", "rule")
        assert [getattr(copy, f) for f in fields] == [getattr(exc, f) for f in fields]
        assert (str(copy), copy.event) == ("the message", "log")

    def test_illegal_and_definition(self) -> None:
        """IllegalTransition keeps kind and legal events; InvalidDefinition its sorted states."""
        exc = IllegalTransition("s", "retry", "PENDING", ["start"], kind="step", entity_id="x")
        copy = pickle.loads(pickle.dumps(exc))
        assert (copy.kind, copy.legal_events, copy.event, str(copy)) == (
            "step",
            ("start",),
            "retry",
            str(exc),
        )
        bad = InvalidDefinition("broken", ["B", "A"])
        again = pickle.loads(pickle.dumps(bad))
        assert (str(again), again.states) == ("broken", ("A", "B"))


class TestJointWithoutId:
    """A joint refusal without an id shows no id at all."""

    def test_no_id(self) -> None:
        """Without entity_id the message goes straight from the name to the state."""
        exc = JointRuleViolation(
            "load",
            "start",
            "PENDING",
            (),
            kind="step",
            entity_id=None,
            rule="r",
            rule_number=1,
            rule_text="t",
            blocking="b",
        )
        assert str(exc) == "Can't start step 'load' from PENDING: b; rule 1 (r): t"
