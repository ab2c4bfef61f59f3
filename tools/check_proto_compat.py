"""Check that the protos stay wire-compatible with the committed baseline (offline).

    python tools/check_proto_compat.py                    # make proto-compat
    python tools/check_proto_compat.py --update-baseline  # make proto-baseline

Events outlive the code that wrote them: they sit in JetStream, in outboxes and
in the audit log, and old and new versions of a service run side by side during
a rollout. So a field of an envelope or event payload (or any other message)
may never be deleted without reserving its number, renumbered, or given a
wire-incompatible type. The check runs ``buf breaking protos --against
protos/compat/baseline.binpb`` with the ``breaking`` rules of buf.yaml (WIRE);
it needs no network. Adding fields, messages, enum values and files passes.

Moving the baseline forward is a deliberate act, done in the same commit as the
proto change it accepts:

1. Make the change compatibly when you can: add a new field instead of changing
   one; to drop a field write ``reserved 7; reserved "old_name";`` in its place.
2. When the protos are final for the commit, run ``make proto-baseline``
   (``buf build -o protos/compat/baseline.binpb``) and commit the new baseline
   with the protos. Everything committed before is then the contract later
   changes are checked against.
3. A change that really must break the wire (an unreleased message, say) is
   accepted only this way, with the reason in the commit message: re-baselining
   is the one place a break is allowed, so it is visible in review.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = Path("protos/compat/baseline.binpb")
MODULE = "protos"


def buf_binary() -> str:
    """The buf from the buf-bin wheel beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "buf"
    if beside.exists():
        return str(beside)
    found = shutil.which("buf")
    if found is None:
        raise SystemExit("buf not found: install the dev extras (buf-bin)")
    return found


def check(root: Path, against: Path) -> subprocess.CompletedProcess[str]:
    """Run ``buf breaking`` in ``root`` (a directory with buf.yaml and protos/)."""
    baseline = against if against.is_absolute() else root / against
    if not baseline.exists():
        raise SystemExit(f"{baseline} is missing; create it with: make proto-baseline")
    return subprocess.run(
        [buf_binary(), "breaking", MODULE, "--against", str(baseline)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def update_baseline(root: Path, out: Path) -> None:
    target = out if out.is_absolute() else root / out
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([buf_binary(), "build", "-o", str(target)], cwd=root, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="directory with buf.yaml")
    parser.add_argument("--against", type=Path, default=BASELINE, help="baseline image")
    parser.add_argument(
        "--update-baseline",
        action="store_true",
        help="rebuild the baseline from the current protos (a deliberate act; see above)",
    )
    ns = parser.parse_args(argv)
    if ns.update_baseline:
        update_baseline(ns.root, ns.against)
        print(f"baseline written to {ns.against}")
        return 0
    result = check(ns.root, ns.against)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        print(
            "protos are not wire-compatible with the baseline "
            "(see tools/check_proto_compat.py for how to move it forward deliberately)",
            file=sys.stderr,
        )
        return 1
    print("protos are wire-compatible with the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
