"""`pipestate validate FILE|NAME...`: check pipeline configs without running them (for CI)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from pipestate.cli import (
    EXIT_OK,
    EXIT_USAGE,
    _debug_option,
    _import_option,
    _json_option,
    import_modules,
)


@click.command("validate")
@click.argument("pipelines", nargs=-1, required=True, metavar="FILE|NAME...")
@click.option(
    "--config-dir",
    envvar="PIPESTATE_CONFIG_DIR",
    default="configs",
    show_default=True,
    show_envvar=True,
    type=click.Path(file_okay=False),
    help="Root of provider/domain/pipeline.yml configs (for NAME arguments).",
)
@_import_option
@_json_option
@_debug_option
def validate(
    pipelines: Sequence[str], config_dir: str, imports: Sequence[str], as_json: bool, debug: bool
) -> int:
    """Check each config (schema, processors, step configs, DAG); nothing runs, nothing is written.

    Exit code 0 when every config is valid, 2 when any is not (one line per problem config).
    """
    import json

    from classifier.errors import ValidationError
    from executor.config import load_pipeline_config

    import_modules(imports)
    results = []
    for name in pipelines:
        try:
            config = load_pipeline_config(name, config_dir=config_dir)
        except ValidationError as exc:
            results.append({"pipeline": name, "valid": False, "error": str(exc)})
        else:
            steps = len(config.steps)
            results.append(
                {"pipeline": name, "valid": True, "pipeline_id": config.pipeline_id, "steps": steps}
            )
    ok = all(r["valid"] for r in results)
    if as_json:
        click.echo(json.dumps({"valid": ok, "results": results}, indent=2))
    else:
        for r in results:
            if r["valid"]:
                noun = "step" if r["steps"] == 1 else "steps"
                click.echo(f"ok    {r['pipeline']} ({r['pipeline_id']}, {r['steps']} {noun})")
            else:
                click.echo(f"error {r['error']}", err=True)
        bad = sum(not r["valid"] for r in results)
        click.echo(f"{len(results) - bad} valid, {bad} invalid", err=bad > 0)
    return EXIT_OK if ok else EXIT_USAGE
