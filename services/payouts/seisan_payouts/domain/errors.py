"""The payout service's exception hierarchy, rooted in :class:`PayoutsError`."""

from seisan_shared.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)


class PayoutsError(DomainError):
    """Base of every payout-service failure."""


class InvalidRequest(PayoutsError, InvalidArgument):
    """The request itself is wrong (no receipts, no reason, bad page token)."""


class ClaimNotFound(PayoutsError, NotFound):
    def __init__(self, claim_id: str) -> None:
        super().__init__(f"claim {claim_id!r} not found")


class PayoutNotFound(PayoutsError, NotFound):
    def __init__(self, payout_id: str) -> None:
        super().__init__(f"payout {payout_id!r} not found")


class RunNotFound(PayoutsError, NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"payout run {run_id!r} not found")


class PayeeNotFound(PayoutsError, NotFound):
    def __init__(self, employee: str) -> None:
        super().__init__(f"no payee account is linked for {employee!r}")


class NotAllowed(PayoutsError, PermissionDenied):
    """The caller may not do this to this claim or payout (not theirs, their own claim)."""


class PolicyBlocked(PayoutsError, FailedPrecondition):
    """Policy findings that block the claim; ``findings`` says which, in words."""

    def __init__(self, message: str, findings: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.findings = findings


class WrongState(PayoutsError, FailedPrecondition):
    """The claim or payout is not in a state that allows this (approve a paid claim)."""


class LedgerError(PayoutsError, FailedPrecondition):
    """A posting would break a ledger invariant (unbalanced, or paying more than is owed)."""


class RailUnavailable(PayoutsError, Unavailable):
    """The payout rail (Stripe) could not be reached or kept failing; try again later."""
