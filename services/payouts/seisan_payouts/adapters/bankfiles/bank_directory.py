"""Japanese bank and branch codes from the ``zengin-code`` package's data.

The package loads its whole table (about 1,100 banks) when imported, so it is
imported on first use, not when this module is.
"""

from __future__ import annotations

from typing import Any

from seisan_payouts.adapters.bankfiles.zengin import BranchNames


class ZenginCodeDirectory:
    """A :class:`~seisan_payouts.adapters.bankfiles.zengin.BankDirectory` over zengin-code."""

    def __init__(self) -> None:
        self._banks: dict[str, Any] | None = None

    def _table(self) -> dict[str, Any]:
        if self._banks is None:
            import zengin_code  # slow import: a table of every bank and branch

            self._banks = dict(zengin_code.Bank.all)
        return self._banks

    @property
    def data_version(self) -> str:
        """The data's date as the package states it, e.g. '1.1.0.20260824'."""
        self._table()
        import zengin_code

        return str(zengin_code.__version__)

    def names(self, bank_code: str, branch_code: str) -> BranchNames | None:
        bank = self._table().get(bank_code)
        if bank is None:
            return None
        branch = bank.branches.get(branch_code)
        if branch is None:
            return None
        return BranchNames(bank_kana=str(bank.kana), branch_kana=str(branch.kana))
