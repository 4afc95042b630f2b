"""Fire calls on many threads at the same moment: the shared harness of the race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable

from statemachine import IllegalTransition, TransitionRecord


def race(
    calls: list[Callable[[], TransitionRecord]],
) -> tuple[list[TransitionRecord], list[IllegalTransition]]:
    """Start every call at once on its own thread; return (records won, refusals).

    Any other exception fails the caller's test, so a torn transition cannot hide as a refusal.
    """
    barrier = threading.Barrier(len(calls))
    wins: list[TransitionRecord] = []
    refusals: list[IllegalTransition] = []
    others: list[BaseException] = []
    lock = threading.Lock()

    def worker(call: Callable[[], TransitionRecord]) -> None:
        barrier.wait()
        try:
            record = call()
        except IllegalTransition as exc:
            with lock:
                refusals.append(exc)
        except BaseException as exc:
            with lock:
                others.append(exc)
        else:
            with lock:
                wins.append(record)

    threads = [threading.Thread(target=worker, args=(c,)) for c in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert others == [], others
    return wins, refusals
