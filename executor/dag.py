"""The step graph: dependencies, dependents, cycle detection and ready-set bookkeeping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """Return one dependency cycle as [a, b, ..., a] (a depends on b ...), or None if acyclic."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(deps, white)
    for root in deps:
        if colour[root] != white:
            continue
        # Iterative DFS: a deep chain must not hit the recursion limit.
        path: list[str] = [root]
        iters = [iter(deps[root])]
        colour[root] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                iters.pop()
                continue
            if nxt not in colour:
                continue  # unknown ids are reported elsewhere
            if colour[nxt] == grey:
                return [*path[path.index(nxt) :], nxt]
            if colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                iters.append(iter(deps[nxt]))
    return None


class Dag:
    """An acyclic step graph in declaration order; answers who is ready and who is blocked."""

    __slots__ = ("_dependents", "_deps", "order")

    def __init__(self, deps: Mapping[str, Sequence[str]]) -> None:
        cycle = find_cycle(deps)
        if cycle is not None:
            raise ValueError(f"dependency cycle: {' -> '.join(cycle)}")
        self.order: tuple[str, ...] = tuple(deps)
        self._deps: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in deps.items()}
        dependents: dict[str, list[str]] = {k: [] for k in deps}
        for step, ups in deps.items():
            for up in ups:
                if up not in dependents:
                    raise ValueError(f"step {step!r} depends on unknown step {up!r}")
                dependents[up].append(step)
        self._dependents = {k: tuple(v) for k, v in dependents.items()}

    def deps(self, step: str) -> frozenset[str]:
        """Return the steps `step` waits for."""
        return self._deps[step]

    def dependents(self, step: str) -> tuple[str, ...]:
        """Return the steps that wait directly for `step`, in declaration order."""
        return self._dependents[step]

    def descendants(self, step: str) -> list[str]:
        """Return every step downstream of `step` (transitively), in declaration order."""
        seen: set[str] = set()
        stack = list(self._dependents[step])
        while stack:
            cur = stack.pop()
            if cur not in seen:
                seen.add(cur)
                stack.extend(self._dependents[cur])
        return [s for s in self.order if s in seen]

    def roots(self) -> list[str]:
        """Return the steps with no dependencies, in declaration order."""
        return [s for s in self.order if not self._deps[s]]

    def ready(self, done: Iterable[str], candidates: Iterable[str]) -> list[str]:
        """Return the candidates whose dependencies are all in `done`."""
        finished = set(done)
        return [s for s in candidates if self._deps[s] <= finished]

    def topological_order(self) -> list[str]:
        """Return all steps so each comes after its dependencies (declaration order breaks ties)."""
        remaining = {s: len(self._deps[s]) for s in self.order}
        out: list[str] = []
        ready = [s for s in self.order if remaining[s] == 0]
        while ready:
            cur = ready.pop(0)
            out.append(cur)
            for nxt in self._dependents[cur]:
                remaining[nxt] -= 1
                if remaining[nxt] == 0:
                    ready.append(nxt)
        return out
