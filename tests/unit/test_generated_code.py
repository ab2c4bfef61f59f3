"""The committed generated code (shared/seisan) is what tools/gen_protos.py makes of protos/ now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GEN_PROTOS = ROOT / "tools" / "gen_protos.py"
COMMITTED = ROOT / "shared" / "seisan"


def generated_files(package_root: Path) -> dict[str, bytes]:
    """Relative path → content of every generated file (bytecode caches left out)."""
    return {
        path.relative_to(package_root).as_posix(): path.read_bytes()
        for path in sorted(package_root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(GEN_PROTOS), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = generated_files(tmp_path / "seisan")
    committed = generated_files(COMMITTED)
    assert fresh, "the generator produced nothing"
    missing = sorted(set(fresh) - set(committed))
    extra = sorted(set(committed) - set(fresh))
    stale = sorted(name for name in set(fresh) & set(committed) if fresh[name] != committed[name])
    problems = [f"missing: shared/seisan/{name}" for name in missing]
    problems += [f"no longer generated: shared/seisan/{name}" for name in extra]
    problems += [f"stale: shared/seisan/{name}" for name in stale]
    assert not problems, "generated code is stale; run `make proto`:\n" + "\n".join(problems)


def test_every_proto_file_has_generated_modules() -> None:
    committed = generated_files(COMMITTED)
    for proto in sorted((ROOT / "protos").rglob("*.proto")):
        stem = proto.relative_to(ROOT / "protos" / "seisan").with_suffix("").as_posix()
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert f"{stem}{suffix}" in committed, f"{proto} has no shared/seisan/{stem}{suffix}"
