"""Write the NATS cluster and accounts configuration under deploy/ from seisan_shared.bus.accounts.

    python tools/gen_nats_config.py           # rewrite the files
    python tools/gen_nats_config.py --check   # exit 1 when a file is stale

Permissions come from the event catalogue (who publishes what) and the
services' durable consumers, so a new event type or consumer changes them here,
not by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seisan_shared.bus.accounts import generated_files

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    ns = parser.parse_args(argv)
    stale = []
    for relative, text in generated_files().items():
        path = ROOT / relative
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(relative)
        if not ns.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if ns.check and stale:
        print("stale: " + ", ".join(stale) + " (run: python tools/gen_nats_config.py)")
        return 1
    for relative in stale:
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
