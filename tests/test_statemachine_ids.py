"""statemachine.ids: UUIDv7 ids are canonical, unique across threads and processes, ordered."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
import uuid

from statemachine import InMemorySink, PipelineRun, StepRun
from statemachine import ids as ids_module
from statemachine.ids import new_id, uuid4_str, uuid7_str

THREADS = 8
PER_THREAD = 2_000


def _ids_in_child(count: int) -> list[str]:
    """Ids generated in a worker process (module level so a pool can pickle it)."""
    return [uuid7_str() for _ in range(count)]


def _increasing(values: list[str]) -> bool:
    """True if every value is strictly greater than the one before it."""
    return all(a < b for a, b in itertools.pairwise(values))


def _timestamp_ms(value: str) -> int:
    """The 48-bit Unix millisecond timestamp at the front of a UUIDv7."""
    return uuid.UUID(value).int >> 80


class TestFormat:
    """What one id looks like."""

    def test_canonical_version_7_rfc_9562_strings(self) -> None:
        """Every id is a canonical lower-case UUID string of version 7 and the RFC variant."""
        for value in (uuid7_str() for _ in range(500)):
            parsed = uuid.UUID(value)
            assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, value)

    def test_timestamp_is_the_creation_time(self) -> None:
        """The embedded millisecond timestamp lies between the clock readings around the call."""
        before = time.time_ns() // 1_000_000
        value = uuid7_str()
        after = time.time_ns() // 1_000_000
        assert before <= _timestamp_ms(value) <= after

    def test_entities_use_uuid7_by_default(self) -> None:
        """Pipeline, step and transition ids of default entities are all UUIDv7."""
        sink = InMemorySink()
        run = PipelineRun.create("p", org_slug="acme", sink=sink)
        step = StepRun.create("s", pipeline=run)
        run.start()
        step.start()
        ids = [run.pipeline_logging_id, step.step_logging_id]
        ids += [r.transition_id for r in sink.records]
        assert new_id is uuid7_str
        assert {uuid.UUID(v).version for v in ids} == {7}


class TestOrder:
    """Ids sort by creation, within one thread and across threads."""

    def test_sequential_ids_strictly_increase(self) -> None:
        """Ids generated one after another (many per millisecond) sort in creation order."""
        ids = [uuid7_str() for _ in range(20_000)]
        assert _increasing(ids)

    def test_transition_ids_of_a_chain_sort_like_the_chain(self) -> None:
        """A run's transition records, sorted by transition_id, come out in the order emitted."""
        sink = InMemorySink()
        run = PipelineRun.create("p", org_slug="acme", sink=sink)
        run.start()
        for i in range(50):
            step = StepRun.create(f"s{i}", pipeline=run)
            step.start()
            step.complete()
        run.complete()
        emitted = [r.transition_id for r in sink.records]
        assert sorted(emitted) == emitted

    def test_monotonic_across_threads(self) -> None:
        """Ids taken by racing threads, recorded in the order they were made, strictly increase."""
        lock = threading.Lock()
        ordered: list[str] = []
        per_thread: list[list[str]] = [[] for _ in range(THREADS)]
        barrier = threading.Barrier(THREADS)

        def work(index: int) -> None:
            barrier.wait()
            mine = per_thread[index]
            for i in range(PER_THREAD):
                if i % 2:
                    mine.append(uuid7_str())
                else:  # under the lock, so `ordered` is creation order across threads
                    with lock:
                        ordered.append(uuid7_str())

        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert _increasing(ordered)
        for mine in per_thread:
            assert _increasing(mine)
        everything = ordered + [v for mine in per_thread for v in mine]
        assert len(set(everything)) == len(everything) == THREADS * PER_THREAD


class TestProcesses:
    """Forked children and their parent never hand out the same id."""

    def test_unique_across_forked_processes(self) -> None:
        """Ids made at the same time by four forked children and the parent are all distinct."""
        parent_before = [uuid7_str() for _ in range(1_000)]
        context = multiprocessing.get_context("fork")
        with context.Pool(4) as pool:
            pending = pool.map_async(_ids_in_child, [5_000] * 4)
            parent_during = [uuid7_str() for _ in range(5_000)]
            children = pending.get(timeout=60)
        everything = parent_before + parent_during + [v for ids in children for v in ids]
        assert len(set(everything)) == len(everything)
        for ids in children:
            assert _increasing(ids)


class TestUuid4Pool:
    """uuid4_str hands out random version-4 ids from a pool refilled a batch at a time."""

    def test_refill_adds_a_batch_of_distinct_ids(self) -> None:
        """One refill adds _BATCH new, distinct, version-4 ids to the pool."""
        ids_module._pool.clear()
        ids_module._refill()
        fresh = list(ids_module._pool)
        assert len(fresh) == len(set(fresh)) == ids_module._BATCH
        assert all(uuid.UUID(v).version == 4 for v in fresh)

    def test_variant_character_is_random(self) -> None:
        """All four RFC 4122 variant characters occur, none a copy of its neighbour's bits."""
        values = [uuid4_str() for _ in range(1024)]
        variant = [v[19] for v in values]
        assert set(variant) == set("89ab")
        # Two random bits of the variant character must not repeat the next character's bits.
        same = sum("89ab".index(v[19]) == int(v[20], 16) & 3 for v in values)
        assert same < len(values) // 2
