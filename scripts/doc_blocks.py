"""Write a docs page's first ```yaml block to hello.yml and first ```python block to guide.py."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main(page: str, out_dir: str) -> int:
    """Extract the page's example files into out_dir; fail if either block is missing."""
    text = Path(page).read_text(encoding="utf-8")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for lang, name in (("yaml", "hello.yml"), ("python", "guide.py")):
        match = re.search(rf"```{lang}\n(.*?)```", text, re.S)
        if match is None:
            print(f"{page}: no ```{lang} block", file=sys.stderr)
            return 1
        (out / name).write_text(match.group(1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
