"""Checkpoints kept outside the database: one JSON line per head, appended, fsynced.

The file is the witness for the one attack the database cannot see: someone
who drops the triggers, cuts off (or rewrites) the tail *and* winds the anchor
back. Keep it where the database's owner cannot write — another volume, a
WORM bucket, a printout; the service appends to it, it never rewrites it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from seisan_audit.domain.chain import Checkpoint, format_instant, is_hex_hash, parse_instant
from seisan_audit.domain.errors import CheckpointFileError
from seisan_audit.domain.ports import CheckpointStore


class CheckpointFile(CheckpointStore):
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[Checkpoint]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        checkpoints: list[Checkpoint] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            checkpoints.append(self._parse(line, number))
        return checkpoints

    def _parse(self, line: str, number: int) -> Checkpoint:
        where = f"{self.path}:{number}"
        try:
            data = json.loads(line)
            records, head_hash, taken_at = data["records"], data["head_hash"], data["taken_at"]
            if not isinstance(records, int) or records < 0 or not is_hex_hash(head_hash):
                raise ValueError("bad records or head_hash")
            return Checkpoint(records, head_hash, parse_instant(taken_at))
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointFileError(f"{where}: not a checkpoint ({exc})") from None

    def append(self, checkpoint: Checkpoint) -> None:
        line = json.dumps(
            {
                "records": checkpoint.records,
                "head_hash": checkpoint.head_hash,
                "taken_at": format_instant(checkpoint.taken_at),
            },
            sort_keys=True,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
