"""Signals, score and reasons of candidate pairs. Vectorised: one call scores a million pairs,
and the incremental index calls the same function with a handful, so both agree.

Signals (each 0..1):

* **amount**: exact (or total + the receipt's tip line) 1.0; an authorisation/capture
  difference within the tolerance 0.95 → 0.85; a tip within the bound at a tip MCC
  0.93 → 0.80; converted at the reference rate within the band 0.90 → 0.60;
  anything else in the search window 0.35 (suggestion only, never automatic).
* **date**: the posting lag (charge transaction date minus receipt date): same day 1.0,
  minus 0.06 a day after, 0.2 a day before.
* **merchant**: shingle similarity of the normalised descriptor and name.
* **cardholder**: 1 when the cardholder submitted the receipt, else 0.
* **card_last4**: 1 when the receipt shows the charge's card digits, 0 when it shows other
  digits, absent (not weighed) when it shows none.

The score is the weighted mean of the signals present (an exact amount weighs more and the
merchant less: see EXACT_SHIFT). A pair is confirmed automatically
only with identity evidence (cardholder = submitter, or the card digits) and no contrary
card digits; the engine adds the one-to-one and ambiguity rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from seisan_shared.money import exponent, format_major

from .candidates import VIA_FX_RATE, VIA_ORIGINAL, Candidates, tip_mcc_mask
from .descriptors import normalise_merchant
from .encoding import EncodedCharges, EncodedReceipts
from .model import AmountKind, ChargeView, ReceiptView, SignalBreakdown, Thresholds

__all__ = [
    "WEIGHTS",
    "PairScore",
    "Scored",
    "amount_signal_one",
    "describe",
    "describe_split",
    "merchant_score_bits",
    "merchant_scores",
    "score_candidates",
    "score_pair",
]

F64 = npt.NDArray[np.float64]
WEIGHTS = {"amount": 0.35, "merchant": 0.25, "date": 0.15, "cardholder": 0.15, "card_last4": 0.10}
# An exact amount (or total + tip line) moves this much of the merchant's weight to the amount:
# a receipt printed under the operator's legal name does not hide an exact, same-person match.
EXACT_SHIFT = 0.15


@dataclass
class Scored:
    score: F64
    amount: F64
    date: F64
    merchant: F64
    cardholder: F64
    card_last4: F64  # NaN where the receipt shows no card digits
    kind: npt.NDArray[np.int8]
    lag: npt.NDArray[np.int32]
    eligible: npt.NDArray[np.bool_]  # may be confirmed automatically, score permitting
    valid: npt.NDArray[np.bool_]  # within some tolerance at all


def merchant_scores(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> F64:
    """Similarity of fingerprint rows ``a[i]`` and ``b[i]``, as descriptors.merchant_similarity."""
    inter = np.bitwise_count(a & b).sum(axis=1, dtype=np.int64)
    na = np.bitwise_count(a).sum(axis=1, dtype=np.int64)
    nb = np.bitwise_count(b).sum(axis=1, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(na + nb > 0, 2.0 * inter / (na + nb), 0.0)
        smaller = np.minimum(na, nb)
        containment = np.where(smaller >= 4, inter / np.maximum(smaller, 1), dice)
    return np.where((na == 0) | (nb == 0), 0.0, np.maximum(dice, 0.92 * containment))


def _amount_signal(
    amount: npt.NDArray[np.int64],
    total: npt.NDArray[np.int64],
    tip: npt.NDArray[np.int64],
    tip_mcc: npt.NDArray[np.bool_],
    via: npt.NDArray[np.int8],
    rate: F64,
    th: Thresholds,
) -> tuple[F64, npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
    n = len(amount)
    signal = np.zeros(n)
    kind = np.full(n, AmountKind.OVER, np.int8)
    tip_max = th.tip_max_percent
    over_max = max(th.suggest_over_percent, tip_max)

    # Same currency (billed, or the charge's original amount): integer arithmetic only.
    diff = amount - total
    absdiff = np.abs(diff)
    share = diff / np.maximum(total, 1)
    exact = diff == 0
    tip_line = (tip > 0) & (diff == tip)
    capture = absdiff * 10_000 <= total * th.capture_tolerance_bp
    tipped = (diff > 0) & tip_mcc & (diff * 100 <= total * tip_max)
    over = (diff > 0) & (diff * 100 <= total * over_max)
    direct = via != VIA_FX_RATE
    exact, tip_line, capture, tipped = (m & direct for m in (exact, tip_line, capture, tipped))
    valid = direct & (exact | tip_line | capture | tipped | over)
    cap_share = max(th.capture_tolerance_bp, 1) / 10_000
    tip_share = max(tip_max, 1) / 100
    choices: list[tuple[npt.NDArray[np.bool_], AmountKind, F64 | float]] = [
        (exact | tip_line, AmountKind.EXACT, 1.0),
        (capture, AmountKind.CAPTURE, 0.95 - 0.10 * np.abs(share) / cap_share),
        (tipped, AmountKind.TIP, 0.93 - 0.13 * share / tip_share),
    ]
    # Foreign receipt, no original amount: the implied rate against the reference rate.
    band = th.fx_band_percent / 100
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = amount / (total * rate) - 1.0
        dev_tip = amount / ((total + tip) * rate) - 1.0
    fx = ~direct
    fx_ok = fx & (np.abs(dev) <= band)
    fx_tip_line = fx & (tip > 0) & (np.abs(dev_tip) <= band)
    fx_share = (1.0 + dev) / (1.0 + band) - 1.0
    fx_tipped = fx & tip_mcc & (dev > band) & (fx_share <= tip_share)
    fx_over = fx & (fx_share > 0) & (fx_share <= over_max / 100)
    valid |= fx_ok | fx_tip_line | fx_tipped | fx_over
    choices += [
        (fx_ok, AmountKind.FX_RATE, 0.90 - 0.30 * np.abs(dev) / band),
        (fx_tip_line & ~fx_ok, AmountKind.FX_RATE, 0.90 - 0.30 * np.abs(dev_tip) / band),
        (fx_tipped, AmountKind.TIP, 0.80 - 0.15 * fx_share / tip_share),
    ]
    chosen = np.zeros(n, bool)
    for mask, k, value in choices:
        take = mask & ~chosen & valid
        signal = np.where(take, value, signal)
        kind[take] = k
        chosen |= take
    fallback = valid & ~chosen
    signal[fallback] = np.where(direct[fallback], 0.35, 0.30)
    kind[tip_line & ~exact] = AmountKind.TIP_LINE
    return np.clip(signal, 0.0, 1.0), kind, valid


def score_candidates(
    ch: EncodedCharges,
    rc: EncodedReceipts,
    cand: Candidates,
    signatures: npt.NDArray[np.uint64],
    th: Thresholds,
) -> Scored:
    c, r = cand.charge, cand.receipt
    tip_mcc = tip_mcc_mask(ch.mcc[c], th)
    amount, kind, valid = _amount_signal(
        cand.charge_amount, rc.total[r], rc.tip[r], tip_mcc, cand.via, cand.rate, th
    )
    lag = (ch.day[c].astype(np.int64) - rc.day[r]).astype(np.int32)
    date = np.where(lag >= 0, 1.0 - 0.06 * lag, 1.0 - 0.2 * np.abs(lag))
    date = np.clip(date, 0.0, 1.0)
    merchant = merchant_scores(signatures[ch.merchant[c]], signatures[rc.merchant[r]])
    cardholder = (ch.holder[c] == rc.holder[r]).astype(np.float64)
    shown = rc.last4[r] >= 0
    last4 = np.where(shown, (ch.last4[c] == rc.last4[r]).astype(np.float64), np.nan)
    w = WEIGHTS
    exact = (kind == AmountKind.EXACT) | (kind == AmountKind.TIP_LINE)
    shift = np.where(exact, EXACT_SHIFT, 0.0)
    weighted = (
        (w["amount"] + shift) * amount
        + (w["merchant"] - shift) * merchant
        + w["date"] * date
        + w["cardholder"] * cardholder
        + w["card_last4"] * np.nan_to_num(last4)
    )
    total_weight = 1.0 - np.where(shown, 0.0, w["card_last4"])
    score = np.floor(weighted / total_weight * 1e6 + 0.5) / 1e6
    identity = (cardholder == 1.0) | (last4 == 1.0)
    eligible = valid & (kind != AmountKind.OVER) & identity & ~(last4 == 0.0)
    return Scored(score, amount, date, merchant, cardholder, last4, kind, lag, eligible, valid)


# ---- one pair at a time (the incremental index) ------------------------------------------
# The same arithmetic as above, operation for operation, on Python floats (IEEE doubles
# like numpy's), so that a pair scores the same in the index as in a batch run; a test
# checks the two agree on every candidate pair of a synthetic statement.


@dataclass(frozen=True, slots=True)
class PairScore:
    score: float
    amount: float
    date: float
    merchant: float
    cardholder: float
    card_last4: float | None
    kind: AmountKind
    lag: int
    eligible: bool
    valid: bool

    def signals(self) -> SignalBreakdown:
        return SignalBreakdown(
            amount=round(self.amount, 4),
            date=round(self.date, 4),
            merchant=round(self.merchant, 4),
            cardholder=self.cardholder,
            card_last4=self.card_last4,
        )


def _clip01(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def merchant_score_bits(a: int, b: int) -> float:
    """`merchant_scores` for one pair of fingerprints held as 256-bit Python ints."""
    inter, na, nb = (a & b).bit_count(), a.bit_count(), b.bit_count()
    if na == 0 or nb == 0:
        return 0.0
    dice = 2.0 * inter / (na + nb)
    smaller = min(na, nb)
    containment = inter / max(smaller, 1) if smaller >= 4 else dice
    return max(dice, 0.92 * containment)


def amount_signal_one(
    amount: int, total: int, tip: int, tip_mcc: bool, via: int, rate: float, th: Thresholds
) -> tuple[float, AmountKind, bool]:
    """`_amount_signal` for one pair: (signal, kind, valid)."""
    tip_max = th.tip_max_percent
    over_max = max(th.suggest_over_percent, tip_max)
    cap_share = max(th.capture_tolerance_bp, 1) / 10_000
    tip_share = max(tip_max, 1) / 100
    if via != VIA_FX_RATE:
        diff = amount - total
        share = diff / max(total, 1)
        if diff == 0:
            return 1.0, AmountKind.EXACT, True
        if tip > 0 and diff == tip:
            return 1.0, AmountKind.TIP_LINE, True
        if abs(diff) * 10_000 <= total * th.capture_tolerance_bp:
            return _clip01(0.95 - 0.10 * abs(share) / cap_share), AmountKind.CAPTURE, True
        if diff > 0 and tip_mcc and diff * 100 <= total * tip_max:
            return _clip01(0.93 - 0.13 * share / tip_share), AmountKind.TIP, True
        if diff > 0 and diff * 100 <= total * over_max:
            return 0.35, AmountKind.OVER, True
        return 0.0, AmountKind.OVER, False
    band = th.fx_band_percent / 100
    dev = amount / (total * rate) - 1.0
    if abs(dev) <= band:
        return _clip01(0.90 - 0.30 * abs(dev) / band), AmountKind.FX_RATE, True
    if tip > 0:
        dev_tip = amount / ((total + tip) * rate) - 1.0
        if abs(dev_tip) <= band:
            return _clip01(0.90 - 0.30 * abs(dev_tip) / band), AmountKind.FX_RATE, True
    fx_share = (1.0 + dev) / (1.0 + band) - 1.0
    if tip_mcc and dev > band and fx_share <= tip_share:
        return _clip01(0.80 - 0.15 * fx_share / tip_share), AmountKind.TIP, True
    if 0 < fx_share <= over_max / 100:
        return 0.30, AmountKind.OVER, True
    return 0.0, AmountKind.OVER, False


def score_pair(
    *,
    amount: int,
    total: int,
    tip: int,
    tip_mcc: bool,
    via: int,
    rate: float,
    lag: int,
    merchant: float,
    same_holder: bool,
    charge_last4: int,
    receipt_last4: int,
    th: Thresholds,
) -> PairScore:
    """`score_candidates` for one pair."""
    signal, kind, valid = amount_signal_one(amount, total, tip, tip_mcc, via, rate, th)
    date = _clip01(1.0 - 0.06 * lag if lag >= 0 else 1.0 - 0.2 * abs(lag))
    cardholder = 1.0 if same_holder else 0.0
    shown = receipt_last4 >= 0
    last4 = (1.0 if charge_last4 == receipt_last4 else 0.0) if shown else None
    w = WEIGHTS
    shift = EXACT_SHIFT if kind in (AmountKind.EXACT, AmountKind.TIP_LINE) else 0.0
    weighted = (
        (w["amount"] + shift) * signal
        + (w["merchant"] - shift) * merchant
        + w["date"] * date
        + w["cardholder"] * cardholder
        + w["card_last4"] * (last4 or 0.0)
    )
    total_weight = 1.0 - (0.0 if shown else w["card_last4"])
    score = math.floor(weighted / total_weight * 1e6 + 0.5) / 1e6
    eligible = valid and kind != AmountKind.OVER and (same_holder or last4 == 1.0) and last4 != 0.0
    return PairScore(score, signal, date, merchant, cardholder, last4, kind, lag, eligible, valid)


# ---- words -------------------------------------------------------------------------------


def _money(minor: int, currency: str) -> str:
    try:
        return f"{format_major(minor, currency)} {currency}"
    except ValueError:
        return f"{minor} {currency} (minor units)"


def _percent(part: int, whole: int) -> str:
    share = 100.0 * part / whole if whole else 0.0
    text = f"{share:+.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _amount_words(
    charge: ChargeView,
    receipt: ReceiptView,
    kind: AmountKind,
    via: int,
    rate: float,
    th: Thresholds,
) -> str:
    total, tip = receipt.total_minor, receipt.tip_minor or 0
    if via == VIA_ORIGINAL and charge.original_amount_minor is not None:
        compared, label = charge.original_amount_minor, "original amount"
        billed = f" (billed {_money(charge.amount_minor, charge.currency)})"
    else:
        compared, label, billed = charge.amount_minor, "amount", ""
    diff = compared - total
    if kind == AmountKind.EXACT and via != VIA_FX_RATE:
        return f"{label} {_money(compared, receipt.currency)} exact{billed}"
    if kind == AmountKind.TIP_LINE:
        return (
            f"{label} = total {_money(total, receipt.currency)} + tip line "
            f"{_money(tip, receipt.currency)}{billed}"
        )
    if kind == AmountKind.CAPTURE:
        return f"{label} {_percent(diff, total)} (authorisation vs capture){billed}"
    if via == VIA_FX_RATE:
        return _fx_words(charge, receipt, kind, rate, th)
    if kind == AmountKind.TIP:
        return f"{label} {_percent(diff, total)} consistent with tip{billed}"
    why = (
        f"beyond the {th.tip_max_percent}% tip bound"
        if charge.mcc in th.tip_mccs
        else f"no tip expected at MCC {charge.mcc or 'unknown'}"
    )
    return f"{label} {_percent(diff, total)} ({why}){billed}"


def _fx_words(
    charge: ChargeView, receipt: ReceiptView, kind: AmountKind, rate: float, th: Thresholds
) -> str:
    scale = 10.0 ** (exponent(receipt.currency) - exponent(charge.currency))
    implied = charge.amount_minor / max(receipt.total_minor, 1) * scale
    reference = rate * scale
    head = (
        f"{_money(receipt.total_minor, receipt.currency)} billed "
        f"{_money(charge.amount_minor, charge.currency)} at {implied:.4g} "
        f"{charge.currency}/{receipt.currency} (reference {reference:.4g}"
    )
    if kind == AmountKind.FX_RATE:
        return f"{head} ± {th.fx_band_percent}%)"
    if kind == AmountKind.TIP:
        return f"{head}; above it, consistent with tip)"
    return f"{head}; beyond the band)"


def _date_words(lag: int) -> str:
    if lag == 0:
        return "same day"
    if lag > 0:
        return f"{lag} day{'s' if lag != 1 else ''} posting lag"
    return f"charge dated {-lag} day{'s' if lag != -1 else ''} before the receipt"


def describe(
    charge: ChargeView,
    receipt: ReceiptView,
    signals: SignalBreakdown,
    kind: AmountKind,
    via: int,
    rate: float,
    lag: int,
    th: Thresholds,
) -> tuple[str, ...]:
    """The reasons of one pair in words, amount first."""
    words = [_amount_words(charge, receipt, kind, via, rate, th)]
    if signals.merchant >= 0.5 or normalise_merchant(charge.merchant) == normalise_merchant(
        receipt.merchant
    ):
        words.append(f"merchant {charge.merchant!r} ~ {receipt.merchant!r}")
    else:
        words.append(f"merchant {charge.merchant!r} differs from {receipt.merchant!r}")
    words.append(_date_words(lag))
    if signals.cardholder == 1.0:
        words.append("cardholder = submitter")
    else:
        words.append(f"submitted by {receipt.submitter!r}, card held by {charge.cardholder!r}")
    if signals.card_last4 == 1.0:
        words.append(f"receipt shows card ending {receipt.card_last4}")
    elif signals.card_last4 == 0.0:
        words.append(
            f"receipt shows card ending {receipt.card_last4}, charge card ends {charge.card_last4}"
        )
    return tuple(words)


def describe_split(
    charges: list[ChargeView],
    receipts: list[ReceiptView],
    signals: SignalBreakdown,
    lags: list[int],
    original: bool,
) -> tuple[str, ...]:
    """Reasons of a split: the exact sum first."""
    if len(charges) == 1:
        currency = receipts[0].currency
        target = charges[0].original_amount_minor if original else charges[0].amount_minor
        parts = " + ".join(_money(r.total_minor, currency) for r in receipts)
        head = f"{len(receipts)} receipts sum exactly to the charge: {parts} = "
        head += _money(target or 0, currency)
    else:
        currency = receipts[0].currency
        parts = " + ".join(
            _money(
                (c.original_amount_minor or 0)
                if c.original_currency == currency and c.currency != currency
                else c.amount_minor,
                currency,
            )
            for c in charges
        )
        head = f"{len(charges)} charges sum exactly to the receipt: {parts} = "
        head += _money(receipts[0].total_minor, currency)
    words = [head]
    names_c = ", ".join(repr(c.merchant) for c in charges)
    names_r = ", ".join(repr(r.merchant) for r in receipts)
    relation = "~" if signals.merchant >= 0.5 else "differs from"
    words.append(f"merchant {names_c} {relation} {names_r}")
    worst = max(lags, key=abs)
    words.append(_date_words(worst) + (" (largest)" if len(set(lags)) > 1 else ""))
    words.append("cardholder = submitter")
    if signals.card_last4 == 1.0:
        words.append("receipts show the card digits")
    elif signals.card_last4 == 0.0:
        words.append("a receipt shows other card digits")
    return tuple(words)
