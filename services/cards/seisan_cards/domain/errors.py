"""The card reconciliation service's exception hierarchy, rooted in :class:`CardsError`.

Each error mixes in a shared kind, so the gRPC bootstrap maps it to a status code
through the one table in ``seisan_shared.errors``.
"""

from seisan_shared.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)


class CardsError(DomainError):
    """Base of every card reconciliation failure."""


class InvalidRequest(CardsError, InvalidArgument):
    """A request field is malformed (an empty id, a bad period, an unknown format)."""


class StatementTooLarge(CardsError, ResourceExhausted):
    """A statement file above the configured size limit."""


class ChargeNotFound(CardsError, NotFound):
    def __init__(self, charge_id: str) -> None:
        super().__init__(f"charge {charge_id!r} not found")


class MatchNotFound(CardsError, NotFound):
    def __init__(self, match_id: str) -> None:
        super().__init__(f"match {match_id!r} not found")


class ReceiptNotKnown(CardsError, NotFound):
    def __init__(self, receipt_id: str) -> None:
        super().__init__(
            f"receipt {receipt_id!r} is not known to reconciliation "
            "(it has not been extracted, or it was deleted)"
        )


class StatementNotFound(CardsError, NotFound):
    def __init__(self, statement_id: str) -> None:
        super().__init__(f"statement {statement_id!r} not found")


class NotYourCharge(CardsError, PermissionDenied):
    """Cardholders see and declare for their own charges only."""


class MatchStateError(CardsError, FailedPrecondition):
    """The match is not in a state that allows this decision (confirm a rejected match...)."""


class ChargeStateError(CardsError, FailedPrecondition):
    """The charge's state forbids this (declare a matched charge, match a declared one...)."""


class SplitMismatch(CardsError, InvalidArgument):
    """A manual split whose amounts do not sum."""
