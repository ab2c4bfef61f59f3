"""The intake service's exception hierarchy, rooted in :class:`IntakeError`."""

from seisan_shared.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)


class IntakeError(DomainError):
    """Base of every intake failure."""


class ImageRejected(IntakeError, InvalidArgument):
    """The upload is not an acceptable receipt image (type, size, bomb, corrupt)."""


class ReceiptNotFound(IntakeError, NotFound):
    def __init__(self, receipt_id: str) -> None:
        super().__init__(f"receipt {receipt_id!r} not found")


class NotYourReceipt(IntakeError, PermissionDenied):
    """Staff may see and change only their own receipts."""


class ReceiptLocked(IntakeError, FailedPrecondition):
    """A matched or claimed receipt cannot be deleted or changed."""


class InvalidCorrection(IntakeError, InvalidArgument):
    """A corrected field value is malformed."""
