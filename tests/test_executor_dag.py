"""Tests for executor.dag: cycle detection, ordering and blocked-step bookkeeping."""

from __future__ import annotations

import itertools

import pytest

from executor.dag import Dag, find_cycle


class TestFindCycle:
    """find_cycle returns a real cycle when there is one, and None otherwise."""

    def test_acyclic(self) -> None:
        """A diamond has no cycle."""
        assert find_cycle({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}) is None

    def test_cycle_is_closed_path(self) -> None:
        """The returned list starts and ends at the same step and follows dependency edges."""
        deps = {"a": ["c"], "b": ["a"], "c": ["b"], "x": []}
        cycle = find_cycle(deps)
        assert cycle is not None
        assert cycle[0] == cycle[-1]
        for cur, nxt in itertools.pairwise(cycle):
            assert nxt in deps[cur]

    def test_self_loop(self) -> None:
        """A step depending on itself is a cycle of length one."""
        assert find_cycle({"a": ["a"]}) == ["a", "a"]

    def test_long_chain_no_recursion_error(self) -> None:
        """A 10,000-step chain is handled iteratively."""
        deps = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(10_000)}
        assert find_cycle(deps) is None


class TestDag:
    """Dag answers dependents, descendants and ordering questions."""

    def test_rejects_cycle(self) -> None:
        """Building a Dag from a cyclic graph raises ValueError naming the cycle."""
        with pytest.raises(ValueError, match="a -> b -> a"):
            Dag({"a": ["b"], "b": ["a"]})

    def test_rejects_unknown_dependency(self) -> None:
        """A dependency on a step that does not exist is refused."""
        with pytest.raises(ValueError, match="unknown step 'z'"):
            Dag({"a": ["z"]})

    def test_descendants_and_roots(self) -> None:
        """Descendants are transitive, in declaration order; roots have no dependencies."""
        dag = Dag({"a": [], "b": ["a"], "c": ["b"], "d": [], "e": ["d", "b"]})
        assert dag.roots() == ["a", "d"]
        assert dag.descendants("a") == ["b", "c", "e"]
        assert dag.descendants("d") == ["e"]
        assert dag.dependents("b") == ("c", "e")

    def test_topological_order(self) -> None:
        """Every step comes after all of its dependencies."""
        deps = {"c": ["b"], "b": ["a"], "a": [], "d": ["a", "c"]}
        order = Dag(deps).topological_order()
        assert sorted(order) == sorted(deps)
        for step, ups in deps.items():
            assert all(order.index(u) < order.index(step) for u in ups)

    def test_ready(self) -> None:
        """A step is ready once all its dependencies are done."""
        dag = Dag({"a": [], "b": ["a"], "c": ["a", "b"]})
        assert dag.ready([], ["a", "b", "c"]) == ["a"]
        assert dag.ready(["a"], ["b", "c"]) == ["b"]
        assert dag.ready(["a", "b"], ["c"]) == ["c"]
