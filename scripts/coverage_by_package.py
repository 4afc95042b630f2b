"""Print branch coverage per package from the .coverage data that `make test` collected."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

PACKAGES = ("classifier", "statemachine", "persistence", "executor", "pipestate")


def main() -> int:
    """Aggregate statements and branches by top-level package and print one line each."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "-o", str(out)], check=True)
        files = json.loads(out.read_text())["files"]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path, data in files.items():
        package = Path(path).parts[0]
        summary = data["summary"]
        totals[package][0] += summary["covered_lines"] + summary.get("covered_branches", 0)
        totals[package][1] += summary["num_statements"] + summary.get("num_branches", 0)
    print("coverage (statements + branches) by package:")
    for package in PACKAGES:
        covered, total = totals.get(package, [0, 0])
        share = 100.0 * covered / total if total else 100.0
        print(f"  {package:<13} {share:5.1f}%  ({covered}/{total})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
