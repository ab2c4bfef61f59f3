"""`seisan demo`: the whole story, told step by step against a real stack.

aiko (staff) photographs four receipts — three paid with her company card, one
with her own money — and uploads them; OCR reads them. daichi (treasury) imports
the month's card statement (a generic CSV built to match), and the engine
reconciles it: two charges confirmed automatically, one only suggested (a
coffee on ben's card whose receipt aiko kept), one with no receipt at all.
daichi confirms the suggestion and asks for the missing receipt. aiko claims
her personal receipt back, chika (approver) approves it, and daichi pays it
through the local Stripe-compatible server; the demo waits until it is paid,
then checks the audit trail's hash chain.

Every call is a real gRPC call with the demo tokens; nothing is faked.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import grpc
import typer

from seisan.audit.v1 import audit_pb2, audit_pb2_grpc
from seisan.cards.v1 import cards_pb2, cards_pb2_grpc
from seisan.payouts.v1 import payouts_pb2, payouts_pb2_grpc
from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_shared.cli.demo_data import cast_of, draw_receipt, statement_csv
from seisan_shared.cli.demo_stack import DemoStack, StackError, demo_stack
from seisan_shared.cli.exitcodes import EXIT_FAILURE, EXIT_OK, exit_code_for
from seisan_shared.cli.output import emit_json, enum_text, money_json, money_text, to_json
from seisan_shared.grpc.client import sync_channel

T = TypeVar("T")
STAFF, OTHER_STAFF, APPROVER, TREASURY = "demo-aiko", "demo-ben", "demo-chika", "demo-daichi"


class DemoFailed(Exception):
    """A step did not turn out as the story needs; the message says what happened."""


@dataclass
class Step:
    title: str
    ok: bool = False
    seconds: float = 0.0
    detail: list[str] = field(default_factory=list)


class Story:
    """Runs the steps, prints them as they happen, collects the JSON summary."""

    def __init__(self, stack: DemoStack, as_json: bool, timeout: float) -> None:
        self.stack = stack
        self.as_json = as_json
        self.timeout = timeout
        self.steps: list[Step] = []
        self.summary: dict[str, Any] = {}
        self._channels: dict[tuple[str, str], grpc.Channel] = {}

    # -- plumbing -----------------------------------------------------------------------

    def channel(self, service: str, token: str) -> grpc.Channel:
        key = (service, token)
        if key not in self._channels:
            self._channels[key] = sync_channel(self.stack.addresses[service], token)
        return self._channels[key]

    def receipts(self, token: str) -> receipts_pb2_grpc.ReceiptIntakeStub:
        return receipts_pb2_grpc.ReceiptIntakeStub(self.channel("intake", token))

    def cards(self, token: str) -> cards_pb2_grpc.CardReconciliationStub:
        return cards_pb2_grpc.CardReconciliationStub(self.channel("cards", token))

    def payouts(self, token: str) -> payouts_pb2_grpc.ReimbursementPayoutStub:
        return payouts_pb2_grpc.ReimbursementPayoutStub(self.channel("payouts", token))

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def say(self, text: str, **style: Any) -> None:
        if not self.as_json:
            typer.secho(text, **style)

    def step(self, title: str, work: Callable[[Step], None]) -> None:
        step = Step(title)
        self.steps.append(step)
        self.say(f"\n{len(self.steps)}. {title}", bold=True)
        started = time.monotonic()
        try:
            work(step)
        finally:
            step.seconds = round(time.monotonic() - started, 2)
        step.ok = True
        for line in step.detail:
            self.say(f"   {line}")

    def until(self, what: str, check: Callable[[], T | None], within: float | None = None) -> T:
        deadline = time.monotonic() + (within or self.timeout)
        while True:
            value = check()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise DemoFailed(f"gave up waiting: {what}")
            time.sleep(0.3)


class Demo(Story):
    """The story's steps, in order; `play` runs them."""

    def __init__(self, stack: DemoStack, as_json: bool, timeout: float, rng: random.Random):
        super().__init__(stack, as_json, timeout)
        self.rng = rng
        self.today = date.today()
        self.run_no = rng.randrange(1000, 9999)
        self.cast = cast_of(self.today, rng)
        self.by_key: dict[str, str] = {}  # demo key → receipt id
        self.statement_id = ""
        self.suggestion_id = ""
        self.claim_id = ""

    def upload(self, step: Step) -> None:
        staff = self.receipts(STAFF)
        for r in self.cast:
            data = draw_receipt(r, self.run_no)
            meta = receipts_pb2.UploadMetadata(
                paid_with=r.paid_with,  # type: ignore[arg-type]
                filename=f"{r.key}.jpg",
                note="seisan demo",
            )
            reply = staff.UploadReceipt(
                iter(
                    [
                        receipts_pb2.UploadReceiptRequest(metadata=meta),
                        receipts_pb2.UploadReceiptRequest(chunk=data),
                    ]
                ),
                timeout=60,
            )
            self.by_key[r.key] = reply.receipt_id
            how = "company card" if r.cardholder else "own money"
            step.detail.append(f"{r.key}.jpg → {reply.receipt_id}  ({r.merchant}, ¥{r.yen}, {how})")

    def extraction(self, step: Step) -> None:
        staff = self.receipts(STAFF)
        out = []
        for r in self.cast:
            receipt_id = self.by_key[r.key]

            def done(receipt_id: str = receipt_id) -> receipts_pb2.Receipt | None:
                got = staff.GetReceipt(
                    receipts_pb2.GetReceiptRequest(receipt_id=receipt_id), timeout=10
                ).receipt
                return None if got.status == receipts_pb2.RECEIPT_STATUS_PROCESSING else got

            got = self.until(f"OCR of {r.key}.jpg", done)
            total = got.fields.total.amount
            read_ok = (
                total.minor_units == r.yen
                and got.fields.transaction_date.date.day == r.day.day
                and got.status == receipts_pb2.RECEIPT_STATUS_EXTRACTED
            )
            status = enum_text(receipts_pb2.ReceiptStatus.DESCRIPTOR, got.status)
            step.detail.append(
                f"{r.key}: {status} — {got.fields.merchant.value or '?'}, "
                f"{money_text(total.minor_units, total.currency)}, "
                f"{to_json(got.fields.transaction_date.date) or '?'}"
            )
            if not read_ok:  # the story goes on the way a person would: fix the fields
                fix = receipts_pb2.CorrectReceiptRequest(
                    receipt_id=receipt_id, reason="demo: OCR misread, fixed by the submitter"
                )
                fix.fields.merchant.value = r.merchant
                fix.fields.total.amount.minor_units = r.yen
                fix.fields.total.amount.currency = "JPY"
                fix.fields.transaction_date.date.year = r.day.year
                fix.fields.transaction_date.date.month = r.day.month
                fix.fields.transaction_date.date.day = r.day.day
                got = staff.CorrectReceipt(fix, timeout=10).receipt
                step.detail.append(f"   aiko corrected it: ¥{r.yen} on {r.day}")
            out.append(
                {
                    "key": r.key,
                    "receipt_id": receipt_id,
                    "status": enum_text(receipts_pb2.ReceiptStatus.DESCRIPTOR, got.status),
                    "read_by_ocr": read_ok,
                    "merchant": got.fields.merchant.value,
                    "total": money_json(got.fields.total.amount.minor_units, "JPY"),
                    "date": to_json(got.fields.transaction_date.date),
                }
            )
        self.summary["receipts"] = out

    def import_statement(self, step: Step) -> None:
        missing_yen = 3000 + self.rng.randrange(0, 500)
        text = statement_csv(self.cast, missing_yen, self.today, self.run_no)
        reply = self.cards(TREASURY).ImportStatement(
            iter(
                [
                    cards_pb2.ImportStatementRequest(
                        metadata=cards_pb2.ImportStatementMetadata(
                            format=cards_pb2.STATEMENT_FORMAT_GENERIC_CSV,
                            filename=f"demo-statement-{self.run_no}.csv",
                        )
                    ),
                    cards_pb2.ImportStatementRequest(chunk=text.encode()),
                ]
            ),
            timeout=60,
        )
        self.statement_id = reply.statement.statement_id
        step.detail.append(
            f"statement {self.statement_id}: {reply.imported_count} charges, total "
            f"{money_text(reply.statement.total.minor_units, reply.statement.total.currency)}"
        )
        for line in text.splitlines()[1:]:
            step.detail.append(f"  {line}")
        self.summary["statement"] = {
            "statement_id": self.statement_id,
            "imported_count": reply.imported_count,
            "total": to_json(reply.statement.total),
        }

    def charges(self) -> cards_pb2.ListChargesResponse:
        return self.cards(TREASURY).ListCharges(  # type: ignore[no-any-return]
            cards_pb2.ListChargesRequest(statement_id=self.statement_id, page_size=100), timeout=15
        )

    def reconcile(self, step: Step) -> None:
        def settled() -> cards_pb2.ListChargesResponse | None:
            reply = self.charges()
            states = [c.status for c in reply.charges]
            matched = states.count(cards_pb2.CHARGE_STATUS_MATCHED)
            suggested = states.count(cards_pb2.CHARGE_STATUS_SUGGESTED)
            return reply if matched + suggested >= 3 else None

        reply = self.until("the engine to match three of the four charges", settled)
        matches = {m.match_id: m for m in reply.matches}
        auto, suggested, unmatched = [], [], []
        for c in reply.charges:
            m = matches.get(c.match_id)
            line = (
                f"{c.charge_id} {c.merchant_descriptor} {money_text(c.amount.minor_units, 'JPY')}"
            )
            if c.status == cards_pb2.CHARGE_STATUS_MATCHED and m is not None:
                auto.append(_match_json(m))
                step.detail.append(f"auto-confirmed  {line}  score {m.score:.3f}")
            elif c.status == cards_pb2.CHARGE_STATUS_SUGGESTED and m is not None:
                suggested.append(_match_json(m))
                self.suggestion_id = self.suggestion_id or m.match_id
                step.detail.append(f"suggested       {line}  score {m.score:.3f}  ({m.match_id})")
                step.detail += [f"                  · {reason}" for reason in m.reasons]
            else:
                unmatched.append(c.charge_id)
                step.detail.append(f"no receipt      {line}")
        self.summary["matches"] = {"auto_confirmed": auto, "suggested": suggested}
        self.summary["unmatched_charges"] = unmatched
        if not self.suggestion_id:
            raise DemoFailed("expected one suggestion (ben's card, aiko's receipt); got none")

    def confirm(self, step: Step) -> None:
        m = (
            self.cards(TREASURY)
            .ConfirmMatch(cards_pb2.ConfirmMatchRequest(match_id=self.suggestion_id), timeout=15)
            .match
        )
        status = enum_text(cards_pb2.MatchStatus.DESCRIPTOR, m.status)
        step.detail.append(f"{m.match_id} is {status} (by {m.decided_by})")
        asked = self.cards(TREASURY).RequestMissingReceipts(
            cards_pb2.RequestMissingReceiptsRequest(
                statement_id=self.statement_id, message="demo: month-end close"
            ),
            timeout=15,
        )
        for r in asked.requests:
            step.detail.append(f"asked {r.cardholder} for {len(r.charge_ids)} missing receipt(s)")
        self.summary["matches"]["confirmed_by_treasury"] = _match_json(m)
        self.summary["receipts_requested"] = [
            {"cardholder": r.cardholder, "charge_ids": list(r.charge_ids)} for r in asked.requests
        ]

    def submit(self, step: Step) -> None:
        request = payouts_pb2.SubmitClaimRequest(
            items=[payouts_pb2.ClaimItem(receipt_id=self.by_key["personal"], category="supplies")],
            description="demo: pens for the office",
        )

        def submitted() -> payouts_pb2.Claim | None:
            try:
                return self.payouts(STAFF).SubmitClaim(request, timeout=15).claim  # type: ignore[no-any-return]
            except grpc.RpcError as exc:  # payouts hears of the receipt through the bus
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "not known" in (
                    exc.details() or ""
                ):
                    return None
                raise

        claim = self.until("payouts to hear of the personal receipt", submitted)
        self.claim_id = claim.claim_id
        step.detail.append(f"claim {self.claim_id}: {money_text(claim.total.minor_units, 'JPY')}")
        for f in claim.findings:
            sev = enum_text(payouts_pb2.FindingSeverity.DESCRIPTOR, f.severity)
            step.detail.append(f"  policy {sev}: {f.message}")

    def approve(self, step: Step) -> None:
        claim = (
            self.payouts(APPROVER)
            .ApproveClaim(
                payouts_pb2.ApproveClaimRequest(claim_id=self.claim_id, note="demo"), timeout=15
            )
            .claim
        )
        status = enum_text(payouts_pb2.ClaimStatus.DESCRIPTOR, claim.status)
        step.detail.append(f"claim {self.claim_id} {status} by {claim.decided_by}")

    def pay(self, step: Step) -> None:
        treasury = self.payouts(TREASURY)
        account = treasury.LinkPayeeAccount(
            payouts_pb2.LinkPayeeAccountRequest(
                employee="aiko", create_test_account=True, currency="JPY"
            ),
            timeout=30,
        ).account
        step.detail.append(f"aiko is paid through Stripe account {account.stripe_account_id}")
        run = treasury.CreatePayoutRun(
            payouts_pb2.CreatePayoutRunRequest(
                rail=payouts_pb2.PAYOUT_RAIL_STRIPE,
                currency="JPY",
                request_id=f"demo-{self.run_no}",
            ),
            timeout=60,
        ).run
        mine = [p for p in run.payouts if self.claim_id in p.claim_ids]
        if not mine:
            raise DemoFailed(f"run {run.run_id} left the claim out: {'; '.join(run.notes)}")
        payout_id = mine[0].payout_id
        step.detail.append(f"run {run.run_id}: payout {payout_id}, waiting for Stripe…")

        def final() -> payouts_pb2.Payout | None:
            p = treasury.GetPayout(
                payouts_pb2.GetPayoutRequest(payout_id=payout_id), timeout=15
            ).payout
            done = (payouts_pb2.PAYOUT_STATUS_PAID, payouts_pb2.PAYOUT_STATUS_FAILED)
            return p if p.status in done else None

        payout = self.until("the payout to be paid", final)
        claim = treasury.GetClaim(
            payouts_pb2.GetClaimRequest(claim_id=self.claim_id), timeout=15
        ).claim
        status = enum_text(payouts_pb2.PayoutStatus.DESCRIPTOR, payout.status)
        step.detail.append(
            f"payout {payout_id} {status}: {money_text(payout.amount.minor_units, 'JPY')} "
            f"(transfer {payout.stripe_transfer_id}, payout {payout.stripe_payout_id})"
        )
        self.summary["claim"] = {
            "claim_id": self.claim_id,
            "status": enum_text(payouts_pb2.ClaimStatus.DESCRIPTOR, claim.status),
            "total": to_json(claim.total),
            "approved_by": claim.decided_by,
        }
        self.summary["payout"] = {
            "payout_id": payout_id,
            "run_id": run.run_id,
            "status": status,
            "amount": to_json(payout.amount),
            "stripe_transfer_id": payout.stripe_transfer_id,
            "stripe_payout_id": payout.stripe_payout_id,
        }
        if payout.status != payouts_pb2.PAYOUT_STATUS_PAID:
            raise DemoFailed(f"payout {payout_id} failed: {payout.failure_reason}")

    def audit(self, step: Step) -> None:
        stub = audit_pb2_grpc.AuditTrailStub(self.channel("audit", TREASURY))

        def caught_up() -> audit_pb2.VerifyChainResponse | None:
            reply = stub.VerifyChain(audit_pb2.VerifyChainRequest(), timeout=30)
            return reply if reply.records > 0 else None

        reply = self.until("audit records", caught_up)
        state = "intact" if reply.ok else f"BROKEN ({len(reply.problems)} problems)"
        step.detail.append(f"{reply.records} records, hash chain {state}")
        self.summary["audit"] = {"ok": reply.ok, "records": reply.records}
        if not reply.ok:
            raise DemoFailed("the audit chain does not verify")

    def play(self) -> None:
        self.step("aiko (staff) uploads four receipt photos", self.upload)
        self.step("OCR reads them", self.extraction)
        self.step("daichi (treasury) imports the card statement", self.import_statement)
        self.step("the engine reconciles charges with receipts", self.reconcile)
        self.step("daichi confirms the suggestion and asks for the missing receipt", self.confirm)
        self.step("aiko claims her personal receipt back", self.submit)
        self.step("chika (approver) approves the claim", self.approve)
        self.step("daichi pays it through Stripe (local test server)", self.pay)
        self.step("the audit trail verifies", self.audit)


def _match_json(m: cards_pb2.Match) -> dict[str, Any]:
    return {
        "match_id": m.match_id,
        "charge_ids": list(m.charge_ids),
        "receipt_ids": list(m.receipt_ids),
        "status": enum_text(cards_pb2.MatchStatus.DESCRIPTOR, m.status),
        "automatic": m.automatic,
        "score": round(m.score, 4),
        "reasons": list(m.reasons),
    }


def demo(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary at the end."),
    var: Path = typer.Option(
        None, "--var", help="Start the stack with its state here (default: a temporary folder)."
    ),
    timeout: float = typer.Option(60.0, help="Seconds any one wait may take."),
    seed: int = typer.Option(None, help="Seed for amounts and ids (default: random)."),
) -> None:
    """Play the whole story on a real stack: receipts → statement → reconcile → claim → payout.

    Uses the running stack (var/stack.json) or starts one like `seisan up` in a temporary
    folder (stopped afterwards). Staff upload receipts, OCR reads them, treasury imports a
    matching statement and confirms a suggestion, a claim is approved and paid through the
    local Stripe-compatible server, and the audit chain is verified. Exit 0 when every
    step worked, otherwise the exit code of the failing step.

    Example: seisan demo --json

    Who: anyone on a demo stack (it signs in with the demo tokens).
    """
    rng = random.Random(seed)
    started = time.monotonic()
    code = EXIT_OK
    story: Story | None = None
    error = ""
    stack_info: dict[str, Any] = {}
    try:
        if not as_json:
            typer.echo("finding or starting the stack…")
        with demo_stack(var) as stack:
            stack_info = {"started": stack.started, "var": str(stack.var)}
            if not as_json:
                how = "started in " if stack.started else "running, from "
                typer.echo(f"stack {how}{stack.var}")
            story = Demo(stack, as_json, timeout, rng)
            try:
                story.play()
            finally:
                story.close()
    except grpc.RpcError as exc:
        code = exit_code_for(exc.code())  # type: ignore[attr-defined]
        error = f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    except (DemoFailed, StackError) as exc:
        code = EXIT_FAILURE
        error = str(exc)
    steps = story.steps if story else []
    summary: dict[str, Any] = {
        "ok": code == EXIT_OK,
        "seconds": round(time.monotonic() - started, 1),
        "stack": stack_info,
        "steps": [{"title": st.title, "ok": st.ok, "seconds": st.seconds} for st in steps],
        **(story.summary if story else {}),
    }
    if error:
        failed = next((st.title for st in steps if not st.ok), "starting the stack")
        summary["error"] = {"step": failed, "message": error}
    if as_json:
        emit_json(summary)
    elif error:
        typer.secho(f"\nseisan demo: failed at “{summary['error']['step']}”: {error}", fg="red")
    else:
        typer.secho(f"\ndone in {summary['seconds']}s: every step worked.", fg="green", bold=True)
    raise typer.Exit(code)
