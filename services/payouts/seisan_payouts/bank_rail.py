"""The bank-file rail: a run's transfer file for treasury, and treasury's confirmation.

Issuing the file is the hand-over: the first ``GetBankFile`` writes the file from
the run's payouts that are still ``created``, stores its bytes, and marks those
payouts sent (booked out of cash into payouts in transit) in the same
transaction. Every later request returns the stored bytes, so treasury always
downloads the same file (same SHA-256) and a payout can never be in two files.
Money is marked paid only when treasury confirms what the bank executed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from seisan_payouts import settlement
from seisan_payouts.adapters.bankfiles import write_pain001, write_zengin
from seisan_payouts.adapters.bankfiles.zengin import BankDirectory
from seisan_payouts.domain.bank_transfer import BankFile, BankTransfer, Debtor, TransferBatch
from seisan_payouts.domain.errors import InvalidRequest, RunNotFound, WrongState
from seisan_payouts.domain.model import Actor
from seisan_payouts.domain.payouts import BankFileFormat, Payout, PayoutRun, PayoutStatus, Rail
from seisan_payouts.domain.ports import StoredBankFile, UnitOfWork
from seisan_payouts.handlers import PayoutsPorts, retrying

CONTENT_TYPES = {"zengin-sogo-furikomi": "text/plain; charset=Shift_JIS"}


def content_type(stored: StoredBankFile) -> str:
    return CONTENT_TYPES.get(stored.format, "application/xml")


async def _bank_run(uow: UnitOfWork, run_id: str) -> PayoutRun:
    run = await uow.payouts.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    if run.rail is not Rail.BANK_FILE:
        raise WrongState(f"run {run_id} pays through Stripe; it has no bank file")
    return run


async def _transfers(uow: UnitOfWork, payouts: list[Payout]) -> list[BankTransfer]:
    out: list[BankTransfer] = []
    for payout in payouts:
        payee = await uow.payees.get(payout.employee)
        if payee is None or payee.bank is None:
            raise WrongState(f"{payout.employee} has no bank account linked any more")
        bank = payee.bank
        out.append(
            BankTransfer(
                payout_id=payout.payout_id,
                payee_name=bank.payee_name,
                payee_name_kana=bank.payee_name_kana,
                amount=payout.amount,
                bank_code=bank.bank_code,
                branch_code=bank.branch_code,
                account_type=bank.account_type,
                account_number=bank.account_number,
                iban=bank.iban,
                bic=bank.bic,
                reference=f"Seisan {payout.payout_id}",
            )
        )
    return out


@dataclass
class BankRail:
    ports: PayoutsPorts
    debtor: Debtor
    directory: BankDirectory | None = None

    def _write(self, run: PayoutRun, transfers: list[BankTransfer]) -> BankFile:
        assert run.execution_date is not None
        batch = TransferBatch(
            batch_id=run.run_id,
            debtor=self.debtor,
            execution_date=run.execution_date,
            created_at=run.created_at,
            transfers=tuple(transfers),
        )
        if run.bank_file_format is BankFileFormat.ZENGIN:
            return write_zengin(batch, directory=self.directory)
        return write_pain001(batch)

    async def bank_file(self, run_id: str, actor: Actor) -> StoredBankFile:
        async def issue() -> StoredBankFile:
            async with self.ports.uow() as uow:
                stored = await uow.bank_files.get(run_id)
                if stored is not None:
                    return stored
                run = await _bank_run(uow, run_id)
                payouts = [
                    p for p in await uow.payouts.of_run(run_id) if p.status is PayoutStatus.CREATED
                ]
                if not payouts:
                    raise WrongState(f"run {run_id} has no payouts left to pay (all cancelled)")
                transfers = await _transfers(uow, payouts)
                written = await asyncio.to_thread(self._write, run, transfers)
                now = self.ports.clock()
                for payout in payouts:
                    await settlement.sent(uow, payout, payout.payout_id, now, actor.name)
                stored = StoredBankFile(
                    run_id=run_id,
                    format=written.format,
                    filename=written.filename,
                    content=written.content,
                    sha256=written.sha256,
                    created_at=now,
                )
                await uow.bank_files.add(stored)
                await uow.audit(
                    actor=actor.name,
                    action="payout.bank_file",
                    entity_type="payout_run",
                    entity_id=run_id,
                    before=None,
                    after={
                        "format": written.format,
                        "sha256": written.sha256,
                        "count": written.count,
                        "total": written.total.format(),
                    },
                )
                await uow.commit()
                return stored

        return await retrying(issue)

    async def confirm_paid(
        self,
        run_id: str,
        payout_ids: list[str],
        rejections: dict[str, str],
        bank_reference: str,
        actor: Actor,
    ) -> list[Payout]:
        """Treasury's word on what the bank did: listed (or all other sent) payouts are
        paid, rejected ones fail with the bank's reason. Repeating it changes nothing."""
        for pid, reason in rejections.items():
            if not reason.strip():
                raise InvalidRequest(f"rejection of {pid} needs the bank's reason")
        if set(payout_ids) & set(rejections):
            raise InvalidRequest("a payout cannot be both paid and rejected")

        async def confirm() -> list[Payout]:
            async with self.ports.uow() as uow:
                run = await _bank_run(uow, run_id)
                if await uow.bank_files.get(run_id) is None:
                    raise WrongState(f"run {run_id}: the bank file was never issued")
                payouts = {p.payout_id: p for p in await uow.payouts.of_run(run.run_id)}
                unknown = sorted((set(payout_ids) | set(rejections)) - set(payouts))
                if unknown:
                    raise InvalidRequest(f"not in run {run_id}: {', '.join(unknown)}")
                paid_ids = set(payout_ids) or {
                    pid
                    for pid, p in payouts.items()
                    if p.status is PayoutStatus.SENT and pid not in rejections
                }
                now = self.ports.clock()
                for pid in sorted(rejections):
                    await settlement.refused(
                        uow,
                        payouts[pid],
                        f"bank rejected it: {rejections[pid].strip()}",
                        now,
                        actor.name,
                    )
                for pid in sorted(paid_ids):
                    await settlement.paid(uow, payouts[pid], now, actor.name, bank_reference)
                await uow.commit()
                return list(payouts.values())

        return await retrying(confirm)
