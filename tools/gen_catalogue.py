"""Render the event catalogue into README.md between its catalogue markers.

    python tools/gen_catalogue.py           # rewrite the README section
    python tools/gen_catalogue.py --check   # exit 1 when the README section is stale

The table comes from ``seisan_shared.catalogue.render_markdown()``; only the
text between ``<!-- catalogue:start -->`` and ``<!-- catalogue:end -->`` is touched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seisan_shared.catalogue import render_markdown

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START = "<!-- catalogue:start -->"
END = "<!-- catalogue:end -->"


def splice(text: str, section: str) -> str:
    """``text`` with everything between the markers replaced by ``section``."""
    start = text.find(START)
    end = text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"README needs {START} followed by {END}")
    head = text[: start + len(START)]
    return f"{head}\n{section}{text[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the README is stale")
    parser.add_argument("--readme", type=Path, default=README)
    ns = parser.parse_args(argv)
    current = ns.readme.read_text(encoding="utf-8")
    wanted = splice(current, render_markdown())
    if ns.check:
        if current != wanted:
            print(
                f"{ns.readme}: event catalogue is stale; run: python tools/gen_catalogue.py",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != wanted:
        ns.readme.write_text(wanted, encoding="utf-8")
        print(f"updated the event catalogue in {ns.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
