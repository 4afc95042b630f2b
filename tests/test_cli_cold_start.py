"""The cold start of `pipestate run` / `validate` / `query`: what a plain invocation must not load.

Timings belong to benchmarks/scale.py; these tests guard the structure that makes a start cheap:
each runs the CLI in a fresh interpreter with stdout piped (as a script or CI job would) and
lists the heavy modules the process ended up importing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence import _writer_pool
from persistence._writer_process import THREAD_WRITER_MAX_STEPS, WRITER_ENV
from pipestate._script import STARTUP_GC_THRESHOLD
from pipestate.cli import main
from tests.processes import kill_at_burst

# Modules a 1-step run that succeeds has no use for, with why each was heavy.
NOT_ON_A_RUN = (
    "rich",  # tables print plain when piped (pipestate/_cli_plain.py)
    "cattrs",  # well-formed configs are structured directly (executor/_fast_structure.py)
    "typing_extensions",  # cattrs' dependency
    "importlib.metadata",  # no installed distribution declares a processor plug-in
    "classifier.engine",  # nothing failed, nothing to classify
    "classifier.rules",
    "executor.cancellation",  # imported when a signal or fail_fast cancels something
    "executor.etl",  # the data processors' modules load when a config names one
    "random",  # only a jittered retry delay draws from it (classifier/retry.py)
    "pickle",  # only a writer child's replies and an unusual frame use it (thread writer here)
    "hashlib",  # lease row ids are uuid5 through uuid_utils, not the stdlib's OpenSSL SHA-1
    "structlog",  # nothing logged
    "duckdb",
    "httpx",
    "google",
    "pipestate.service",
    "persistence.exporters",
)
# Not passed to the probes: rich's colour switches, and coverage's subprocess start-up (under
# `make test` it would load coverage, and with it hashlib, into the very process being measured).
_NOT_INHERITED = (
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "COVERAGE_PROCESS_START",
    "COVERAGE_PROCESS_CONFIG",
)
_PROBE = """
import contextlib, io, json, sys
import classifier.redact
from pipestate.cli import main

out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
compiled = [
    name for name, value in vars(classifier.redact).items()
    if type(value).__name__ == "LazyRegex" and value._compiled is not None
]
print(json.dumps({"code": code, "modules": sorted(sys.modules), "redact_compiled": compiled,
                  "out": out.getvalue()}))
"""


def _probe(
    tmp_path: Path, *args: str, python: tuple[str, ...] = (), prelude: str = ""
) -> dict[str, object]:
    """Run the CLI with `args` in a fresh interpreter; its exit code, modules and output.

    `python` are options for the interpreter, `prelude` code run before the probe's own."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.pop("PIPESTATE_STORE", None)
    proc = subprocess.run(
        [sys.executable, *python, "-c", prelude + _PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


@pytest.fixture
def one_step(tmp_path: Path) -> Path:
    """A 1-step no-op pipeline file."""
    path = tmp_path / "one.yml"
    path.write_text(
        "pipeline_id: one\nsteps:\n  - step_id: s0\n    processor: generic.noop\n",
        encoding="utf-8",
    )
    return path


def _loaded(result: dict[str, object], names: tuple[str, ...]) -> list[str]:
    modules = result["modules"]
    assert isinstance(modules, list)
    return [n for n in names if n in modules]


class TestColdStart:
    def test_a_one_step_run_loads_nothing_it_does_not_use(
        self, tmp_path: Path, one_step: Path
    ) -> None:
        """A successful 1-step run prints its timeline without rich, cattrs, the classifier's
        rules, importlib.metadata or any optional engine, and compiles no redaction regex."""
        store = f"sqlite:{tmp_path / 'audit.db'}"
        result = _probe(tmp_path, "run", str(one_step), "--org", "acme", "--store", store)
        assert result["code"] == 0
        assert "┃ time " in str(result["out"])  # the timeline was printed (plainly)
        assert _loaded(result, NOT_ON_A_RUN) == []
        assert result["redact_compiled"] == []

    def test_a_failing_run_still_classifies(self, tmp_path: Path) -> None:
        """Laziness is not loss: a failing step loads the classifier and is classified."""
        path = tmp_path / "fail.yml"
        path.write_text(
            "pipeline_id: bad\nsteps:\n  - step_id: s0\n    processor: generic.fail\n"
            "    config: {exception: PermissionError, message: denied}\n",
            encoding="utf-8",
        )
        store = f"sqlite:{tmp_path / 'audit.db'}"
        result = _probe(tmp_path, "run", str(path), "--org", "acme", "--store", store)
        assert result["code"] == 1
        assert _loaded(result, ("classifier.engine",)) == ["classifier.engine"]
        assert "PERMANENT" in str(result["out"])

    def test_validate_loads_no_event_loop_or_cattrs(self, tmp_path: Path, one_step: Path) -> None:
        """`pipestate validate` of a good file needs neither asyncio nor cattrs nor rich."""
        result = _probe(tmp_path, "validate", str(one_step))
        assert result["code"] == 0
        assert _loaded(result, ("asyncio", "cattrs", "rich", "importlib.metadata")) == []

    def test_a_bad_config_still_gets_cattrs_messages(self, tmp_path: Path) -> None:
        """A config the fast path refuses goes through cattrs and gets its precise message."""
        path = tmp_path / "bad.yml"
        path.write_text("pipeline_id: x\nsteps: []\nconcurrency: two\n", encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "pipestate.cli", "validate", str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert proc.returncode == 2
        assert "concurrency: expected an integer, got string 'two'" in proc.stderr

    def test_a_piped_query_loads_no_rich(self, tmp_path: Path, one_step: Path) -> None:
        """`pipestate query` piped prints a table that fits (or 'no rows') without rich."""
        store = f"sqlite:{tmp_path / 'audit.db'}"
        _probe(tmp_path, "run", str(one_step), "--org", "acme", "--store", store)
        for args in (("runs", "--wide"), ("failures",)):
            result = _probe(tmp_path, "query", *args, "--store", store)
            assert result["code"] == 0
            assert str(result["out"]).startswith(f"query {args[0]} (")
            assert _loaded(result, ("rich", "asyncio", "cattrs")) == []


class TestInstalledLayout:
    def test_a_run_needs_no_pathlib(self, tmp_path: Path, one_step: Path) -> None:
        """From an installed (not editable) layout a run never imports pathlib: strings do."""
        import site

        # -S skips site (and the editable install's finder, which imports pathlib itself);
        # the packages then come from plain sys.path entries, as from a wheel.
        root = str(Path(__file__).resolve().parent.parent)
        paths = [root, *site.getsitepackages()]
        store = f"sqlite:{tmp_path / 'audit.db'}"
        result = _probe(
            tmp_path,
            *("run", str(one_step), "--org", "acme", "--store", store),
            python=("-S",),
            prelude=f"import sys; sys.path[:0] = {paths!r}\n",
        )
        assert result["code"] == 0
        assert _loaded(result, ("pathlib", "ipaddress", "hashlib")) == []


class TestConsoleScript:
    def test_the_script_runs_console_main(self) -> None:
        """The installed `pipestate` script enters pipestate._script (main() stays for
        in-process use)."""
        import tomllib

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        scripts = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["scripts"]
        assert scripts["pipestate"] == "pipestate._script:console_main"

    def test_the_collector_is_held_back_before_the_cli_is_imported(self, tmp_path: Path) -> None:
        """The script raises the first GC threshold before it imports pipestate.cli (click,
        attrs and the engine are most of start-up's allocations), once."""
        probe = (
            "import gc, sys\n"
            "calls = []\n"
            "real = gc.set_threshold\n"
            "def spy(*args):\n"
            "    calls.append(['pipestate.cli' in sys.modules, args[0]])\n"
            "    real(*args)\n"
            "gc.set_threshold = spy\n"
            "import atexit\n"
            "atexit.register(lambda: print(calls))\n"
            "sys.argv[1:] = ['--version']\n"
            "from pipestate._script import console_main\n"
            "console_main()\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
        assert proc.returncode == 0
        assert proc.stdout.splitlines()[-1] == f"[[False, {STARTUP_GC_THRESHOLD}]]"

    @pytest.mark.parametrize(
        ("args", "code"), [(("--version",), 0), (("validate", "missing.yml"), 2)]
    )
    def test_console_main_exits_with_mains_code_past_a_frozen_heap(
        self, tmp_path: Path, args: tuple[str, ...], code: int
    ) -> None:
        """console_main exits with main()'s code, collecting rarely during start-up and with the
        heap frozen out of the exit's collection."""
        probe = (
            "import atexit, gc\n"
            "atexit.register(lambda: print(gc.get_freeze_count() > 0, gc.get_threshold()[0]))\n"
            "from pipestate._script import console_main\n"
            "console_main()\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", probe, *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert proc.returncode == code
        assert proc.stdout.splitlines()[-1] == f"True {STARTUP_GC_THRESHOLD}"

    def test_steady_gc_restores_the_default_thresholds(self) -> None:
        """steady_gc() (serve, watch) puts back the thresholds console_main found."""
        import gc

        import pipestate._script as cli

        before = gc.get_threshold()
        try:
            cli._DEFAULT_GC[:] = [before]
            gc.set_threshold(STARTUP_GC_THRESHOLD, *before[1:])
            cli.steady_gc()
            assert gc.get_threshold() == before
            cli.steady_gc()  # a second call (or one without console_main) changes nothing
            assert gc.get_threshold() == before
        finally:
            gc.set_threshold(*before)


# Forks of this process while a test counts them (os.register_at_fork cannot be undone).
_FORKS: list[int] = []
_COUNTING: list[bool] = []


def _count_fork() -> None:
    if _COUNTING:
        _FORKS.append(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_parent=_count_fork)


def chain_yaml(steps: int, *, gap_after: int | None = None, last_seconds: float = 0) -> str:
    """A no-op chain of `steps` steps; optionally one 1.5 s step after `gap_after` of them, and
    a last step sleeping `last_seconds`."""
    lines = ["pipeline_id: chain", "timeout_minutes: 10", "steps:"]
    for i in range(steps):
        sleep = 1.5 if i == gap_after else last_seconds if i == steps - 1 else 0
        lines.append(f"  - step_id: s{i}")
        if sleep:
            lines += [
                "    processor: generic.slow_processor",
                f"    config: {{sleep_seconds: {sleep}}}",
            ]
        else:
            lines.append("    processor: generic.noop")
        if i:
            lines.append(f"    depends_on: [s{i - 1}]")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def counting_forks() -> Iterator[list[int]]:
    """Count the forks of this process inside the block."""
    _FORKS.clear()
    _COUNTING.append(True)
    try:
        yield _FORKS
    finally:
        _COUNTING.clear()


def transition_ids(path: Path) -> set[str]:
    """The transition ids stored in a SQLite file (none if it has no table yet)."""
    if not path.exists():
        return set()
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
        try:
            rows = conn.execute("SELECT transition_id FROM org_meta_state_transitions")
            return {r[0] for r in rows}
        except sqlite3.OperationalError:  # killed before its first table existed
            return set()


def _run_chain_counting_forks(tmp_path: Path, steps: int, forks: int) -> Path:
    """`pipestate run` a chain of `steps` no-op steps in-process: it succeeds, forks `forks`
    processes and stores every transition; returns the store's path."""
    path = tmp_path / "chain.yml"
    path.write_text(chain_yaml(steps), encoding="utf-8")
    db = tmp_path / "audit.db"
    _writer_pool.clear()  # a writer child an earlier test parked would be reused, not forked
    with counting_forks() as counted, contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", str(path), "--org", "acme", "--store", f"sqlite:{db}"])
    assert code == 0
    assert len(counted) == forks
    assert len(transition_ids(db)) == 2 * steps + 2
    return db


class TestWriterChoice:
    @pytest.mark.parametrize(
        ("steps", "forks"),
        [(1, 0), (THREAD_WRITER_MAX_STEPS, 0), (THREAD_WRITER_MAX_STEPS + 1, 1)],
    )
    def test_a_small_run_commits_from_a_thread_a_big_one_from_the_writer_process(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: int, forks: int
    ) -> None:
        """A run of up to THREAD_WRITER_MAX_STEPS steps forks no writer process, a bigger one
        forks one; either way every transition and the run row are stored."""
        monkeypatch.delenv(WRITER_ENV, raising=False)
        db = _run_chain_counting_forks(tmp_path, steps, forks)
        with contextlib.closing(sqlite3.connect(db)) as conn:
            (runs,) = conn.execute("SELECT COUNT(*) FROM org_meta_pipeline_runs").fetchone()
        assert runs == 1

    @pytest.mark.parametrize(("choice", "steps", "forks"), [("process", 1, 1), ("thread", 60, 0)])
    def test_the_environment_decides_over_the_size(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        choice: str,
        steps: int,
        forks: int,
    ) -> None:
        """PIPESTATE_SQLITE_WRITER, when set, picks the writer of a run of any size."""
        monkeypatch.setenv(WRITER_ENV, choice)
        _run_chain_counting_forks(tmp_path, steps, forks)

    def test_a_small_run_killed_keeps_what_it_emitted_before(self, tmp_path: Path) -> None:
        """SIGKILL of a small run (thread writer) while its last step runs keeps a prefix of the
        emitted transitions missing nothing older than 1 s: the burst before a 1.5 s step."""
        steps = THREAD_WRITER_MAX_STEPS
        path = tmp_path / "chain.yml"
        path.write_text(chain_yaml(steps, gap_after=steps // 2, last_seconds=30), encoding="utf-8")
        db = tmp_path / "audit.db"
        side = tmp_path / "emitted.txt"
        ready = 1 + 2 * (steps - 1) + 1  # the run's start, every earlier step, the last's start
        env = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_LOG_")}
        env.pop(WRITER_ENV, None)
        args = ["run", str(path), "--org", "acme", "--store", f"sqlite:{db}", "--json"]
        killed_at = kill_at_burst(side, ready, args, env)  # once the last step has started
        emitted = [ln.split() for ln in side.read_text().splitlines()]
        kept = [tid in transition_ids(db) for tid, _ in emitted]
        old = [k for (_, at), k in zip(emitted, kept, strict=True) if int(at) < killed_at - 10**9]
        lost_young = kept.count(False)
        print(f"emitted {len(emitted)}, lost {lost_young} (all younger than 1 s)")
        assert len(emitted) == ready
        assert len(old) >= steps // 2 * 2  # the first burst is more than 1 s old
        assert all(old)
        first_lost = kept.index(False) if False in kept else len(kept)
        assert not any(kept[first_lost:]), "a row was stored after an older one was lost"
