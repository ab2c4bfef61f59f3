"""Bank transfer files for treasury to upload: Zengin 総合振込 and ISO 20022 pain.001."""

from seisan_payouts.adapters.bankfiles.pain001 import PAIN_FORMAT, Pain001Options, write_pain001
from seisan_payouts.adapters.bankfiles.zengin import (
    ZENGIN_FORMAT,
    BankDirectory,
    BranchNames,
    ZenginOptions,
    to_zengin_text,
    write_zengin,
)

__all__ = [
    "PAIN_FORMAT",
    "ZENGIN_FORMAT",
    "BankDirectory",
    "BranchNames",
    "Pain001Options",
    "ZenginOptions",
    "to_zengin_text",
    "write_pain001",
    "write_zengin",
]
