"""The audit service's exception hierarchy, rooted in :class:`AuditError`."""

from seisan_shared.errors import DomainError, InvalidArgument, NotFound


class AuditError(DomainError):
    """Base of every audit failure."""


class InvalidRecord(AuditError, InvalidArgument):
    """An audit record that cannot be chained (missing field, malformed JSON state)."""


class EntryNotFound(AuditError, NotFound):
    def __init__(self, seq: int) -> None:
        super().__init__(f"audit entry {seq} not found")
        self.seq = seq


class CheckpointFileError(AuditError, InvalidArgument):
    """The checkpoint file cannot be read as checkpoints (damaged or not ours)."""


class InvalidPageToken(AuditError, InvalidArgument):
    """A page token this service did not hand out."""
