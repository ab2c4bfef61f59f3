"""gRPC AuditTrail: thin — protobuf in, handler call, protobuf out (roles in the contract)."""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from seisan.audit.v1 import audit_pb2, audit_pb2_grpc
from seisan_audit.domain.chain import ChainEntry, ChainReport, DamagedEntry, ProblemKind
from seisan_audit.domain.errors import InvalidPageToken
from seisan_audit.domain.ports import AuditReader, CheckpointStore, RecordQuery
from seisan_audit.handlers import verify

DEFAULT_PAGE = 50
MAX_PAGE = 500

_KINDS = {
    ProblemKind.EDITED: audit_pb2.CHAIN_PROBLEM_KIND_EDITED,
    ProblemKind.MISSING: audit_pb2.CHAIN_PROBLEM_KIND_MISSING,
    ProblemKind.BROKEN_LINK: audit_pb2.CHAIN_PROBLEM_KIND_BROKEN_LINK,
    ProblemKind.OUT_OF_ORDER: audit_pb2.CHAIN_PROBLEM_KIND_OUT_OF_ORDER,
    ProblemKind.TRUNCATED: audit_pb2.CHAIN_PROBLEM_KIND_TRUNCATED,
    ProblemKind.ANCHOR_MISMATCH: audit_pb2.CHAIN_PROBLEM_KIND_ANCHOR_MISMATCH,
}


def _timestamp(moment: Any) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def entry_to_proto(entry: ChainEntry | DamagedEntry) -> audit_pb2.AuditEntry:
    message = audit_pb2.AuditEntry(
        seq=entry.seq, prev_hash=entry.prev_hash, entry_hash=entry.entry_hash
    )
    if isinstance(entry, DamagedEntry):
        return message  # unreadable row: only where it sits and its hashes
    r = entry.record
    message.record.CopyFrom(
        audit_pb2.AuditRecorded(
            record_id=r.record_id,
            source_service=r.source_service,
            actor=r.actor,
            action=r.action,
            entity_type=r.entity_type,
            entity_id=r.entity_id,
            before_json=r.before_json,
            after_json=r.after_json,
            reason=r.reason,
            occurred_at=_timestamp(r.occurred_at),
            correlation_id=r.correlation_id,
        )
    )
    message.recorded_at.CopyFrom(_timestamp(entry.recorded_at))
    return message


def report_to_proto(report: ChainReport) -> audit_pb2.VerifyChainResponse:
    return audit_pb2.VerifyChainResponse(
        ok=report.ok,
        records=report.records,
        head_hash=report.head_hash,
        problems=[
            audit_pb2.ChainProblem(kind=_KINDS[p.kind], seq=p.seq, detail=p.detail)
            for p in report.problems
        ],
    )


class AuditTrailServicer(audit_pb2_grpc.AuditTrailServicer):
    def __init__(self, reader: AuditReader, checkpoints: CheckpointStore | None = None) -> None:
        self._reader = reader
        self._checkpoints = checkpoints

    async def VerifyChain(
        self, request: audit_pb2.VerifyChainRequest, context: Any
    ) -> audit_pb2.VerifyChainResponse:
        witnesses = await asyncio.to_thread(self._checkpoints.read) if self._checkpoints else []
        return report_to_proto(await verify(self._reader, witnesses))

    async def ListRecords(
        self, request: audit_pb2.ListRecordsRequest, context: Any
    ) -> audit_pb2.ListRecordsResponse:
        size = min(max(request.page_size or DEFAULT_PAGE, 1), MAX_PAGE)
        after = _page_after(request.page_token)
        entries = await self._reader.find(
            RecordQuery(
                entity_type=request.entity_type,
                entity_id=request.entity_id,
                actor=request.actor,
                source_service=request.source_service,
                action=request.action,
                after_seq=after,
                limit=size + 1,
            )
        )
        page, more = entries[:size], len(entries) > size
        return audit_pb2.ListRecordsResponse(
            entries=[entry_to_proto(e) for e in page],
            next_page_token=str(page[-1].seq) if more else "",
        )


def _page_after(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidPageToken(f"page token {token!r} was not issued by ListRecords")
    return int(token)
