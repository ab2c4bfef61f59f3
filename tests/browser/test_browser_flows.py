"""The four flows of issue 6 in a real browser, plus a screenshot of each main page.

1. staff: file input → upload progress → extracted fields on screen, without a reload;
2. treasury: confirm a suggested match, the receipt image beside the charge line;
3. approver: reject a claim with a reason;
4. staff: another person's receipt URL is refused.

Setup the browser is not about (a statement import, a claim to decide) goes through
the services' own APIs or the web app over HTTP, as the people would have done before.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from seisan.cards.v1 import cards_pb2, cards_pb2_grpc
from seisan_shared.grpc.client import sync_channel
from support.browser import People
from support.images import receipt_jpeg
from support.webstack import (
    SROIE,
    WebStack,
    import_statement,
    sign_in,
    submit_claim,
    upload,
    wait_status,
)

pytestmark = pytest.mark.slow

OCR_PATIENCE_MS = 150_000


def sroie(sample: str) -> bytes:
    path = SROIE / "images" / f"{sample}.jpg"
    if not path.exists():
        pytest.fail(f"shared data not found at {path} (../shared/data/sroie-dev)")
    return path.read_bytes()


def wait_charge_status(web: WebStack, statement_id: str, status: int) -> cards_pb2.CardCharge:
    deadline = time.monotonic() + 60
    with sync_channel(web.grpc["cards"], "demo-daichi") as channel:
        stub = cards_pb2_grpc.CardReconciliationStub(channel)
        while True:
            listed = stub.ListCharges(cards_pb2.ListChargesRequest(statement_id=statement_id))
            if listed.charges and listed.charges[0].status == status:
                return listed.charges[0]
            assert time.monotonic() < deadline, listed
            time.sleep(0.3)


def test_staff_uploads_from_the_file_input_and_sees_the_extracted_fields(
    web: WebStack, person: People
) -> None:
    aiko = person(phone=True).sign_in("demo-aiko")
    page = aiko.go("/receipts")
    expect(page.locator("input#camera")).to_have_attribute("capture", "environment")
    aiko.shot("staff-upload")
    second = {
        "name": "parking.jpg",
        "mimeType": "image/jpeg",
        "buffer": receipt_jpeg(707, lines=["PARKING", "TOTAL 500"]),
    }
    first = {"name": "hardware.jpg", "mimeType": "image/jpeg", "buffer": sroie("X51005268262")}
    page.set_input_files("input#files", [first, second])  # type: ignore[list-item]
    states = page.locator("#progress li .state")
    expect(states).to_have_text(["Uploaded", "Uploaded"], timeout=60_000)
    expect(page.locator("#progress progress").first).to_have_attribute("value", "100")
    expect(page.locator("#receipts tbody tr")).to_have_count(2)
    row = page.locator("#receipts tbody tr", has_text=re.compile("HOME MASTER", re.I))
    # Processing → extracted arrives over Server-Sent Events; the page is never reloaded.
    expect(row).to_have_count(1, timeout=OCR_PATIENCE_MS)
    expect(row.locator(".badge")).to_have_text("extracted", timeout=OCR_PATIENCE_MS)
    expect(row.locator(".total")).to_have_text("RM 15.90")
    expect(row.locator(".date")).to_have_text("2017-12-22")
    aiko.shot("staff-receipts")
    row.locator("a").first.click()
    expect(page.locator("#f-total")).to_have_text("RM 15.90")
    aiko.shot("staff-receipt")


def test_staff_receipts_in_japanese(web: WebStack, person: People) -> None:
    aiko = person(phone=True, locale="ja-JP").sign_in("demo-aiko")
    page = aiko.go("/receipts")
    expect(page.locator("h1").first).to_have_text("領収書を撮影")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    aiko.shot("staff-receipts-ja")


def test_treasury_confirms_a_suggested_match(web: WebStack, person: People) -> None:
    aiko, csrf = sign_in(web, "demo-aiko")
    receipt_id = upload(aiko, csrf, sroie("X51005303661"), "lightroom.jpg", personal=False)
    wait_status(aiko, receipt_id, "extracted")
    # Ben's card paid; Aiko kept the receipt: no identity evidence, so a person must decide.
    statement_id = import_statement(
        web,
        "charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
        "currency,original_amount,original_currency\n"
        "tx-lr-1,1111,Ben Ito,2017-12-20,2017-12-21,LIGHTROOM GALLERY,5999,73.00,MYR,,\n",
        "december.csv",
    )
    wait_charge_status(web, statement_id, cards_pb2.CHARGE_STATUS_SUGGESTED)

    daichi = person().sign_in("demo-daichi")
    page = daichi.go("/statements")
    daichi.shot("treasury-statements")
    page.click("text=december.csv")
    match = page.locator("section.match").first
    expect(match.locator("img")).to_have_attribute("src", f"/receipts/{receipt_id}/image")
    expect(match.locator(".charge-line")).to_contain_text("RM 73.00")
    expect(match.locator(".reasons")).to_contain_text("exact")
    expect(match.locator("img")).to_have_js_property("complete", True)
    assert match.locator("img").evaluate("img => img.naturalWidth") > 0
    daichi.shot("treasury-statement")
    match.locator("button[name=confirm]").click()
    expect(page.locator(".flash")).to_have_text("Confirmed.")
    expect(page.locator("section.match")).to_have_count(0)
    charge = wait_charge_status(web, statement_id, cards_pb2.CHARGE_STATUS_MATCHED)
    assert charge.match_id

    daichi.go("/charts")
    expect(daichi.page.locator("svg.chart")).to_have_count(3)
    daichi.shot("treasury-charts")
    daichi.go("/payouts")
    expect(daichi.page.locator("h1")).to_have_text("Payout runs")
    daichi.shot("treasury-payouts")


def test_approver_rejects_a_claim_with_a_reason(web: WebStack, person: People) -> None:
    aiko, csrf = sign_in(web, "demo-aiko")
    receipt_id = upload(aiko, csrf, sroie("X51005361898"), "stationery.jpg", personal=True)
    wait_status(aiko, receipt_id, "extracted")
    # Paid in ringgit, claimed in yen: the staff member corrects the amount first.
    fixed = aiko.post(
        f"/receipts/{receipt_id}/correct",
        data={"csrf": csrf, "total": "5,510", "currency": "JPY", "reason": "paid in yen"},
    )
    assert fixed.status_code == 303, fixed.text
    claim_id = submit_claim(aiko, csrf, receipt_id, "supplies").rsplit("/", 1)[1]

    chika = person().sign_in("demo-chika")
    page = chika.go("/approvals")
    expect(page.locator("#queue")).to_contain_text("aiko")
    chika.shot("approver-queue")
    page.click(f"a[href='/approvals/{claim_id}']")
    expect(page.locator("section.line img")).to_have_attribute(
        "src", f"/receipts/{receipt_id}/image"
    )
    expect(page.locator("dl.fields").first).to_contain_text("¥5,510")
    chika.shot("approver-claim")
    page.fill("#reject-form input[name=reason]", "Stationery goes through purchasing")
    page.click("#reject-form button[name=reject]")
    expect(page.locator(".flash")).to_have_text("Rejected.")
    expect(page.locator("#queue")).not_to_contain_text(claim_id[:8])

    mine = aiko.get(f"/claims/{claim_id}").text
    assert "rejected" in mine and "Stationery goes through purchasing" in mine


def test_staff_cannot_open_another_persons_receipt(web: WebStack, person: People) -> None:
    ben, csrf = sign_in(web, "demo-ben")
    receipt_id = upload(
        ben, csrf, receipt_jpeg(606, lines=["BEN'S LUNCH", "TOTAL 980"]), "lunch.jpg", personal=True
    )
    aiko = person(phone=True).sign_in("demo-aiko")
    for path in (f"/receipts/{receipt_id}", f"/receipts/{receipt_id}/image"):
        response = aiko.page.goto(web.url + path)
        assert response is not None and response.status in (403, 404), path
    page = aiko.go(f"/receipts/{receipt_id}")
    expect(page.locator("h1")).to_have_text(re.compile("Not found|Forbidden"))
    expect(page.locator("body")).not_to_contain_text("BEN'S LUNCH")
    aiko.shot("staff-refused")
