"""Charges and receipts as integer arrays: the form the candidate search and scoring work on.

People, currencies, card digits and merchant names become small integer codes
from vocabularies shared by both sides (a cardholder and a submitter with the
same name get the same code). Merchant names carry a 256-bit shingle
fingerprint. The vocabularies grow, so the incremental index encodes one item
at a time with the same codes the batch run would give.
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from seisan_shared.money import exponent

from .descriptors import SIGNATURE_WORDS, merchant_key, normalise_merchant, signature_bits
from .model import ChargeTable, ReceiptTable

__all__ = ["EncodedCharges", "EncodedReceipts", "Encoder", "FxRates"]

I32 = npt.NDArray[np.int32]
_WORD = (1 << 64) - 1
I64 = npt.NDArray[np.int64]


class Vocabulary:
    """Strings to dense integer codes, in order of first appearance."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self.values: list[str] = []

    def __len__(self) -> int:
        return len(self.values)

    def code(self, value: str) -> int:
        found = self._codes.get(value)
        if found is None:
            found = self._codes[value] = len(self.values)
            self.values.append(value)
        return found

    def get(self, value: str) -> int:
        """The code of a known value, -1 for one never seen."""
        return self._codes.get(value, -1)

    def encode(self, values: Sequence[str]) -> tuple[I32, list[str]]:
        """Codes of ``values`` and the strings that were new (in code order).

        One pass in C: ``setdefault`` gives a known value its code and a new value a
        provisional one (its position plus an offset); provisional codes are then made
        dense in order of first appearance.
        """
        codes, start, n = self._codes, len(self.values), len(values)
        offset = start + 1
        raw = np.fromiter(map(codes.setdefault, values, itertools.count(offset)), np.int64, n)
        new = list(itertools.islice(codes, start, None))  # dicts keep insertion order
        if new:
            provisional = np.fromiter((codes[v] for v in new), np.int64, len(new))
            dense = np.zeros(n + 1, np.int64)
            dense[provisional - offset] = np.arange(start, start + len(new))
            fresh = raw >= offset
            raw[fresh] = dense[raw[fresh] - offset]
            codes.update(zip(new, range(start, start + len(new)), strict=True))
            self.values.extend(new)
        return raw.astype(np.int32), new


def _last4_code(text: str) -> int:
    text = text.strip()
    return int(text) if len(text) == 4 and text.isdigit() else -1


@dataclass
class EncodedCharges:
    holder: I32
    last4: I32
    day: I32
    mcc: I32
    amount: I64
    currency: I32
    original_amount: I64
    original_currency: I32  # -1 when the feed gave no original amount
    merchant: I32
    merchant_key: I32  # first word of the normalised merchant, for blocking
    active: npt.NDArray[np.bool_]  # refunds and zero lines are never matched

    def __len__(self) -> int:
        return len(self.amount)


@dataclass
class EncodedReceipts:
    holder: I32
    last4: I32
    day: I32
    total: I64
    tip: I64
    currency: I32
    merchant: I32
    merchant_key: I32
    active: npt.NDArray[np.bool_]  # paid personally, or nothing to pay: never matched

    def __len__(self) -> int:
        return len(self.total)


class FxRates:
    """Reference rates, in minor units of the billed currency per minor unit of the original.

    Given rates (major units, ``{("USD", "JPY"): Decimal("150.2")}``) win; otherwise the
    rate is the median of what the feed's own foreign charges imply (billed amount over
    original amount), over the last ``window`` such charges per currency pair.
    """

    def __init__(self, given: Mapping[tuple[str, str], Decimal | int | str] | None = None) -> None:
        self._given: dict[tuple[str, str], float] = {}
        for (orig, billed), rate in (given or {}).items():
            scale = Decimal(10) ** (exponent(billed) - exponent(orig))
            self._given[(orig, billed)] = float(Decimal(rate) * scale)
        self._observed: dict[tuple[str, str], deque[float]] = {}
        self._cache: dict[tuple[str, str], float] = {}
        self.version = 0

    window = 4096

    def observe(self, original: str, billed: str, ratios: npt.NDArray[np.float64]) -> None:
        seen = self._observed.setdefault((original, billed), deque(maxlen=self.window))
        seen.extend(ratios[-self.window :].tolist())
        self._cache.pop((original, billed), None)
        self.version += 1

    def rate(self, original: str, billed: str) -> float | None:
        key = (original, billed)
        if key in self._given:
            return self._given[key]
        if key not in self._cache:
            seen = self._observed.get(key)
            if not seen:
                return None
            self._cache[key] = statistics.median(seen)
        return self._cache[key]

    def pairs(self) -> set[tuple[str, str]]:
        return set(self._given) | {k for k, v in self._observed.items() if v}


class Encoder:
    """Shared vocabularies and merchant fingerprints for one engine run or one index."""

    def __init__(self, fx_rates: FxRates | None = None) -> None:
        self.holders = Vocabulary()
        self.currencies = Vocabulary()
        self.merchants = Vocabulary()
        self.last4s = Vocabulary()
        self._last4_values: list[int] = []
        self._last4_array = np.zeros(0, np.int32)
        self._signatures = np.zeros((1024, SIGNATURE_WORDS), np.uint64)
        self.merchant_words = Vocabulary()
        self._merchant_keys = np.zeros(1024, np.int32)
        self._signature_bits: list[int] = []  # the fingerprints again, as Python ints
        self._fx_table: list[tuple[int, int, float]] | None = None
        self._fx_version = -1
        self.fx = fx_rates or FxRates()

    @property
    def signatures(self) -> npt.NDArray[np.uint64]:
        return self._signatures[: len(self.merchants)]

    def _grow_signatures(self, new: list[str]) -> None:
        first = len(self.merchants) - len(new)
        need = len(self.merchants)
        if need > len(self._signatures):
            size = max(need, 2 * len(self._signatures))
            grown = np.zeros((size, SIGNATURE_WORDS), np.uint64)
            grown[:first] = self._signatures[:first]
            self._signatures = grown
            keys = np.zeros(size, np.int32)
            keys[:first] = self._merchant_keys[:first]
            self._merchant_keys = keys
        if new:
            normalised = [normalise_merchant(m) for m in new]
            bits = [signature_bits(n) for n in normalised]
            self._signatures[first:need] = np.array(
                [[(b >> (64 * i)) & _WORD for i in range(SIGNATURE_WORDS)] for b in bits],
                dtype=np.uint64,
            )
            self._signature_bits.extend(bits)
            self._merchant_keys[first:need] = [
                self.merchant_words.code(merchant_key(n)) for n in normalised
            ]

    def _merchant_codes(self, values: Sequence[str]) -> tuple[I32, I32]:
        """Merchant codes and blocking keys (first normalised word) of ``values``."""
        codes, new = self.merchants.encode(values)
        self._grow_signatures(new)
        return codes, self._merchant_keys[codes]

    def _last4_codes(self, values: Sequence[str]) -> I32:
        codes, new = self.last4s.encode(values)
        if new:
            self._last4_values.extend(_last4_code(v) for v in new)
            self._last4_array = np.asarray(self._last4_values, np.int32)
        return self._last4_array[codes]

    def _currency_codes(self, values: Sequence[str]) -> I32:
        return self.currencies.encode(values)[0]

    def charges(self, table: ChargeTable) -> EncodedCharges:
        currency = self._currency_codes(table.currency)
        original_currency = self._currency_codes(table.original_currency)
        blank = self.currencies.get("")
        original_amount = np.asarray(table.original_amount_minor, np.int64)
        if blank >= 0:
            original_currency = np.where(original_currency == blank, -1, original_currency)
        original_currency = np.where(original_amount > 0, original_currency, -1).astype(np.int32)
        amount = np.asarray(table.amount_minor, np.int64)
        merchant, merchant_key = self._merchant_codes(table.merchant)
        encoded = EncodedCharges(
            holder=self.holders.encode(table.cardholder)[0],
            last4=self._last4_codes(table.card_last4),
            day=np.asarray(table.transaction_day, np.int32),
            mcc=np.asarray(table.mcc, np.int32),
            amount=amount,
            currency=currency,
            original_amount=np.where(original_currency >= 0, original_amount, 0),
            original_currency=original_currency,
            merchant=merchant,
            merchant_key=merchant_key,
            active=amount > 0,
        )
        self._observe_rates(encoded)
        return encoded

    def _observe_rates(self, ch: EncodedCharges) -> None:
        foreign = np.flatnonzero(ch.original_currency >= 0)
        if not len(foreign):
            return
        pair = ch.original_currency[foreign].astype(np.int64) * 4096 + ch.currency[foreign]
        for key in np.unique(pair).tolist():
            rows = foreign[pair == key]
            ratios = ch.amount[rows] / ch.original_amount[rows]
            self.fx.observe(
                self.currencies.values[key // 4096], self.currencies.values[key % 4096], ratios
            )

    def receipts(self, table: ReceiptTable) -> EncodedReceipts:
        total = np.asarray(table.total_minor, np.int64)
        merchant, merchant_key = self._merchant_codes(table.merchant)
        return EncodedReceipts(
            holder=self.holders.encode(table.submitter)[0],
            last4=self._last4_codes(table.card_last4),
            day=np.asarray(table.day, np.int32),
            total=total,
            tip=np.maximum(np.asarray(table.tip_minor, np.int64), 0),
            currency=self._currency_codes(table.currency),
            merchant=merchant,
            merchant_key=merchant_key,
            active=(total > 0) & (np.asarray(table.company_card) != 0),
        )

    # ---- one item at a time (the incremental index) ------------------------------------

    def merchant(self, name: str) -> tuple[int, int, int]:
        """(merchant code, merchant word code, fingerprint as a 256-bit int) of one name."""
        code = self.merchants.get(name)
        if code < 0:
            code = self.merchants.code(name)
            self._grow_signatures([name])
        return code, int(self._merchant_keys[code]), self._signature_bits[code]

    def signature_bits(self, code: int) -> int:
        return self._signature_bits[code]

    def last4(self, text: str | None) -> int:
        return _last4_code(text or "")

    def fx_table(self) -> list[tuple[int, int, float]]:
        """(original currency code, billed currency code, rate) for every known pair."""
        if self._fx_table is None or self.fx.version != self._fx_version:
            self._fx_table, self._fx_version = self._compute_fx_table(), self.fx.version
        return self._fx_table

    def _compute_fx_table(self) -> list[tuple[int, int, float]]:
        out = []
        for orig, billed in sorted(self.fx.pairs()):
            rate = self.fx.rate(orig, billed)
            if rate is not None and rate > 0:
                out.append((self.currencies.code(orig), self.currencies.code(billed), rate))
        return out
