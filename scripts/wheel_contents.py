"""Check the built wheel and sdist: package data present; no tests, benchmarks or venvs."""

from __future__ import annotations

import sys
import tarfile
import zipfile

PACKAGES = ("classifier", "statemachine", "persistence", "executor", "pipestate")
REQUIRED_IN_WHEEL = (
    "persistence/schemas/org_meta_state_transitions.json",
    "persistence/schemas/bootstrap.yml",
    *(f"{p}/py.typed" for p in PACKAGES),
)
FORBIDDEN_PREFIXES = ("tests/", "benchmarks/", ".venv", "configs/", "docs/", "scripts/")
REQUIRED_IN_SDIST = ("LICENSE", "NOTICE", "configs/test/success/test_success.yml", "pyproject.toml")


def main(wheel: str, sdist: str) -> int:
    """Return 0 when both archives hold what they must and nothing they must not."""
    names = zipfile.ZipFile(wheel).namelist()
    problems = [f"wheel lacks {req}" for req in REQUIRED_IN_WHEEL if req not in names]
    problems += [f"wheel carries {n}" for n in names if n.startswith(FORBIDDEN_PREFIXES)]
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("wheel lacks the LICENSE in its dist-info")
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    problems += [f"sdist lacks {req}" for req in REQUIRED_IN_SDIST if req not in members]
    problems += [f"sdist carries {m}" for m in members if m.startswith((".venv", "site/"))]
    for problem in problems:
        print(f"wheel-check: {problem}", file=sys.stderr)
    print(f"wheel-check: {len(names)} files in the wheel, {len(members)} in the sdist")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
