"""Tests for executor.processors: the registry, plug-ins and the built-in processors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from executor import processors
from executor._builtins import resolve_exception
from executor.processors import (
    ConfigProblem,
    ProcessorContext,
    get_processor,
    known_processors,
    processor,
)


def _ctx(attempt: int = 1, store: Any = None) -> ProcessorContext:
    return ProcessorContext(
        pipeline_logging_id="pl-1",
        pipeline_id="p",
        step_id="s",
        attempt=attempt,
        org_slug="org",
        store=store,
    )


def _run(name: str, config: Mapping[str, Any], ctx: ProcessorContext | None = None) -> Any:
    return asyncio.run(get_processor(name).fn(ctx or _ctx(), config))


async def plugin_proc(context: ProcessorContext, config: Mapping[str, Any]) -> dict[str, Any]:
    """A processor that a fake entry point points at."""
    return {"rows_processed": 3}


class TestRegistry:
    """Processors are found by dotted name; plug-ins come from entry points."""

    def test_builtins_registered(self) -> None:
        """All five built-ins are known."""
        names = set(known_processors())
        assert {
            "generic.noop",
            "generic.slow_processor",
            "generic.fail",
            "generic.flaky",
            "generic.sql",
        } <= names

    def test_decorator_registers(self) -> None:
        """@processor makes a callable available under its name."""

        @processor("tests.echo")
        async def echo(context: ProcessorContext, config: Mapping[str, Any]) -> Any:
            return dict(config)

        try:
            assert _run("tests.echo", {"a": 1}) == {"a": 1}
        finally:
            processors.unregister("tests.echo")

    def test_unknown_name(self) -> None:
        """An unknown name raises KeyError listing the known ones."""
        with pytest.raises(KeyError, match=r"generic\.noop"):
            get_processor("nope.nothing")

    def test_bad_names_refused(self) -> None:
        """Names must be dotted words."""
        with pytest.raises(ValueError, match="dotted"):
            processors.register("bad..name", plugin_proc)

    def test_no_silent_shadowing(self) -> None:
        """register() refuses to replace a different callable unless replace=True."""
        with pytest.raises(ValueError, match="already registered"):
            processors.register("generic.noop", plugin_proc)

    def test_entry_point_plugins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Entry points in group pipestate.processors are registered; broken ones are skipped."""
        good = EntryPoint("tests.plugin", f"{__name__}:plugin_proc", "pipestate.processors")
        bad = EntryPoint("tests.broken", "no_such_module_xyz:thing", "pipestate.processors")

        def fake_entry_points(group: str) -> list[EntryPoint]:
            assert group == "pipestate.processors"
            return [good, bad]

        monkeypatch.setattr("importlib.metadata.entry_points", fake_entry_points)
        try:
            assert processors.load_plugins() == ["tests.plugin"]
            assert _run("tests.plugin", {}) == {"rows_processed": 3}
        finally:
            processors.unregister("tests.plugin")


class TestPluginPrescan:
    """plugins_may_exist() skips importlib.metadata only when no plug-in can be declared."""

    def _isolate(self, monkeypatch: pytest.MonkeyPatch, *entries: str) -> None:
        monkeypatch.setattr(sys, "path", list(entries))

    def test_no_declaration_no_plugins(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Distributions without the group (or with others) mean no plug-in to load."""
        info = tmp_path / "other-1.0.dist-info"
        info.mkdir()
        (info / "entry_points.txt").write_text("[console_scripts]\nx = y:z\n")
        self._isolate(monkeypatch, str(tmp_path), str(tmp_path / "missing"))
        assert processors.plugins_may_exist() is False

    @pytest.mark.parametrize("folder", ["plug-1.0.dist-info", "plug.egg-info"])
    def test_a_declared_group_is_seen(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
    ) -> None:
        """A distribution declaring pipestate.processors makes load_plugins run."""
        info = tmp_path / folder
        info.mkdir()
        (info / "entry_points.txt").write_text("[pipestate.processors]\nmy.proc = m:f\n")
        self._isolate(monkeypatch, str(tmp_path))
        assert processors.plugins_may_exist() is True

    def test_what_it_cannot_read_defers_to_importlib(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A zip archive on sys.path, or another distribution finder, means 'maybe'."""
        archive = tmp_path / "plugins.zip"
        archive.write_bytes(b"PK\x05\x06" + bytes(18))
        self._isolate(monkeypatch, str(archive))
        assert processors.plugins_may_exist() is True

        class Finder:
            def find_distributions(self, *args: object) -> list[object]:
                return []

        self._isolate(monkeypatch)
        monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
        assert processors.plugins_may_exist() is True


class TestBuiltins:
    """The generic.* processors behave as documented."""

    def test_noop(self) -> None:
        """noop returns rows_processed only when configured."""
        assert _run("generic.noop", {}) is None
        assert _run("generic.noop", {"rows_processed": 5}) == {"rows_processed": 5}

    def test_slow(self) -> None:
        """slow_processor sleeps then succeeds."""
        assert _run("generic.slow_processor", {"sleep_seconds": 0, "rows_processed": 2}) == {
            "rows_processed": 2
        }

    def test_fail_builtin_and_qualified(self) -> None:
        """fail raises the configured type (builtin or qualified name) with the message."""
        with pytest.raises(PermissionError, match="403"):
            _run("generic.fail", {"exception": "PermissionError", "message": "403"})
        with pytest.raises(asyncio.InvalidStateError, match="boom"):
            _run("generic.fail", {"exception": "asyncio.InvalidStateError", "message": "boom"})

    def test_fail_builds_multi_argument_exceptions(self) -> None:
        """A class whose constructor needs more than a message is still raised, message kept."""
        with pytest.raises(UnicodeDecodeError, match="bad byte") as info:
            _run("generic.fail", {"exception": "UnicodeDecodeError", "message": "bad byte"})
        assert info.value.args == ("bad byte",)

    def test_fail_imports_named_modules(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The `import` key loads a module at run time; validation accepts it without importing."""
        (tmp_path / "ps_fake_errors.py").write_text(
            "class QuotaError(Exception):\n"
            "    def __init__(self, message, code):\n"
            "        super().__init__(message)\n"
            "        self.code = code\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "ps_fake_errors", raising=False)
        config = {
            "exception": "ps_fake_errors.QuotaError",
            "message": "quota",
            "import": ["ps_fake_errors"],
        }
        spec = get_processor("generic.fail")
        assert spec.check_config is not None
        spec.check_config(config)
        assert "ps_fake_errors" not in sys.modules  # validating ran no import
        with pytest.raises(Exception, match="quota") as info:
            _run("generic.fail", config)
        assert type(info.value).__qualname__ == "QuotaError"
        with pytest.raises(ConfigProblem, match="--import ps_fake_errors"):
            spec.check_config({"exception": "ps_fake_errors2.QuotaError"})

    def test_unknown_processor_hints_at_reinstalling(self) -> None:
        """An unknown name says a newly declared entry point needs the package reinstalled."""
        with pytest.raises(KeyError, match=r"reinstalled \(pip install -e \.\)"):
            get_processor("acme.not_installed_yet")

    def test_fail_refuses_non_exceptions(self) -> None:
        """Only Exception subclasses can be raised (not BaseException, not functions)."""
        for name in ("KeyboardInterrupt", "os.system", "len", "no.such.module.X"):
            with pytest.raises(ConfigProblem):
                resolve_exception(name)

    def test_flaky_counts_attempts(self) -> None:
        """flaky fails with ConnectionError on attempts 1..N and succeeds on N+1."""
        config = {"failures": 2}
        for attempt in (1, 2):
            with pytest.raises(ConnectionError):
                _run("generic.flaky", config, _ctx(attempt))
        assert _run("generic.flaky", {"failures": 2, "rows_processed": 1}, _ctx(3)) == {
            "rows_processed": 1
        }

    def test_sql_needs_store(self) -> None:
        """generic.sql without a store fails with a ValidationError."""
        from classifier.errors import ValidationError

        with pytest.raises(ValidationError, match="needs a store"):
            _run("generic.sql", {"query": "failures"})

    def test_sql_runs_named_query(self, tmp_path: Path) -> None:
        """generic.sql runs a named query on the context's store and counts the rows."""
        from persistence.stores.sqlite import SQLiteStore

        store = SQLiteStore(tmp_path / "q.db")
        try:
            config = {"query": "timeline", "params": {"pipeline_logging_id": "none"}}
            assert _run("generic.sql", config, _ctx(store=store)) == {"rows_processed": 0}
        finally:
            store.close()

    @pytest.mark.parametrize(
        ("name", "config", "key"),
        [
            ("generic.noop", {"rows": 1}, None),
            ("generic.slow_processor", {"sleep_seconds": -1}, "sleep_seconds"),
            ("generic.fail", {"exception": "NotAThing"}, "exception"),
            ("generic.flaky", {"failures": "two"}, "failures"),
            ("generic.sql", {}, "query"),
        ],
    )
    def test_config_checks(self, name: str, config: dict[str, Any], key: str | None) -> None:
        """Each built-in's config check names the offending key."""
        check = known_processors()[name].check_config
        assert check is not None
        with pytest.raises(ConfigProblem) as info:
            check(config)
        assert info.value.key == key


_DEFERRED_PROBE = """
import asyncio, json, sys, tempfile
from executor.processors import ConfigProblem, ProcessorContext, get_processor, known_processors

known = known_processors()
out = {"known": sorted(n for n in known if not n.startswith("generic."))}
out["imported_when_known"] = "executor.etl.duckdb_sql" in sys.modules
try:
    known["duckdb.sql"].check_config({"database": "x.duckdb"})
except ConfigProblem as exc:
    out["problem"] = exc.key
out["imported_by_check"] = "executor.etl.duckdb_sql" in sys.modules
with tempfile.TemporaryDirectory() as tmp:
    context = ProcessorContext(
        pipeline_logging_id="pl", pipeline_id="p", step_id="s", attempt=1, org_slug="o",
        config_source=tmp + "/p.yml",
    )
    config = {"database": "w.duckdb", "sql": "SELECT 42 AS answer"}
    result = asyncio.run(known["duckdb.sql"].fn(context, config))  # the stand-in, run
out["rows"] = result["rows_affected"]
out["real_after"] = [get_processor(n).fn.__module__ for n in out["known"]]
print(json.dumps(out))
"""


class TestDeferredDataProcessors:
    def test_data_processors_load_their_module_when_first_checked_or_run(self) -> None:
        """duckdb.sql, http.extract and gcp.bq_etl are known at once, their modules imported by
        a first check or run; the stand-ins check and run as the real processors do."""
        import json
        import subprocess

        proc = subprocess.run(
            [sys.executable, "-c", _DEFERRED_PROBE],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
            timeout=120,
        )
        result = json.loads(proc.stdout.splitlines()[-1])
        assert result == {
            "known": ["duckdb.sql", "gcp.bq_etl", "http.extract"],
            "imported_when_known": False,
            "problem": "sql",
            "imported_by_check": True,
            "rows": 1,
            "real_after": [
                "executor.etl.duckdb_sql",
                "executor.etl.bq_etl",
                "executor.etl.http_extract",
            ],
        }
