"""Copies the chain's head out of the database now and then, after verifying what is new."""

from __future__ import annotations

import asyncio
import logging

from seisan_audit.domain.ports import AuditReader, CheckpointStore
from seisan_audit.handlers import CheckpointOutcome, take_checkpoint

log = logging.getLogger("seisan.audit.checkpoints")


async def checkpoint_once(reader: AuditReader, store: CheckpointStore) -> CheckpointOutcome | None:
    """One checkpoint; problems are logged as errors (the chain was tampered with)."""
    try:
        outcome = await take_checkpoint(reader, store)
    except Exception:
        log.exception("audit checkpoint failed; will try again")
        return None
    if outcome.report is not None and not outcome.report.ok:
        for problem in outcome.report.problems[:10]:
            log.error("audit chain NOT checkpointed: %s", problem)
    elif outcome.checkpoint is not None:
        cp = outcome.checkpoint
        log.info("audit checkpoint: records=%d head=%s", cp.records, cp.head_hash[:12])
    return outcome


async def run_checkpoints(reader: AuditReader, store: CheckpointStore, interval: float) -> None:
    """Checkpoint at start and every ``interval`` seconds until cancelled."""
    while True:
        await checkpoint_once(reader, store)
        await asyncio.sleep(interval)
