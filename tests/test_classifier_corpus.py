"""The labelled corpus of real error messages: accuracy floors and never-raise properties."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from classifier import ErrorType, classify_error, is_retryable
from tests.strategies.errors import build_exception, exceptions, load_corpus, messages

LABEL_FLOOR = 0.90
RETRY_FLOOR = 0.97


class TestCorpus:
    """Real messages from library sources and bug reports, labelled by the right answer."""

    def test_corpus_is_large_and_cited(self) -> None:
        """At least 150 entries, each with a known label and a source."""
        corpus = load_corpus()
        assert len(corpus) >= 150
        for entry in corpus:
            assert entry["label"] in ErrorType.__members__
            assert entry["source"].strip()
            assert isinstance(entry["message"], str)

    def test_accuracy(self) -> None:
        """Labels >= 0.90 and the retry / no-retry decision >= 0.97."""
        corpus = load_corpus()
        label_hits = retry_hits = 0
        misses: Counter[str] = Counter()
        for entry in corpus:
            exc = build_exception(entry)
            got = classify_error(exc, None if exc is not None else entry["message"])
            label_hits += got == entry["label"]
            retry_hits += is_retryable(got) == is_retryable(entry["label"])
            if got != entry["label"]:
                misses[f"{entry['label']} -> {got.value}"] += 1
        label_acc, retry_acc = label_hits / len(corpus), retry_hits / len(corpus)
        print(
            f"\ncorpus={len(corpus)} label_accuracy={label_acc:.3f} "
            f"retry_accuracy={retry_acc:.3f} misses={dict(misses)}"
        )
        assert label_acc >= LABEL_FLOOR
        assert retry_acc >= RETRY_FLOOR

    def test_message_only_still_decides_retry(self) -> None:
        """Even with the exception type stripped, the retry decision stays mostly right."""
        corpus = load_corpus()
        hits = sum(
            is_retryable(classify_error(None, e["message"])) == is_retryable(e["label"])
            for e in corpus
        )
        assert hits / len(corpus) >= 0.85


class TestNeverRaises:
    """classify_error accepts anything."""

    @given(exceptions(), messages)
    def test_arbitrary_exceptions_and_messages(self, exc: BaseException, message: object) -> None:
        """Invariant: any exception with any message object yields an ErrorType, never raises."""
        assert isinstance(classify_error(exc, message), ErrorType)

    @given(st.binary(max_size=2000))
    def test_binary_messages(self, data: bytes) -> None:
        """Invariant: undecodable bytes are classified, not rejected."""
        assert isinstance(classify_error(None, data), ErrorType)

    @given(st.text(max_size=2000))
    def test_text_messages(self, text: str) -> None:
        """Invariant: any text is classified."""
        assert isinstance(classify_error(None, text), ErrorType)
