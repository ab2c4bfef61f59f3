"""Incremental matching (MatchIndex) and its agreement with the batch engine."""

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from seisan_cards.domain.matching import (
    DEFAULT_THRESHOLDS,
    ChargeView,
    MatchIndex,
    MatchStatus,
    ReceiptView,
    reconcile,
)
from seisan_cards.domain.matching.candidates import find_candidates, tip_mcc_mask
from seisan_cards.domain.matching.encoding import Encoder
from seisan_cards.domain.matching.scoring import merchant_score_bits, score_candidates, score_pair

DAY = dt.date(2026, 11, 3)
ROOT = Path(__file__).resolve().parents[2]


def charge(charge_id="c1", amount=1770, currency="USD", *, holder="alice", mcc=5814, lag=1,
           merchant="SQ *BLUE BOTTLE", original=None, original_currency=None):  # fmt: skip
    day = DAY + dt.timedelta(days=lag)
    return ChargeView(charge_id, "1234", holder, day, day, merchant, mcc, amount, currency,
                      original, original_currency)  # fmt: skip


def receipt(receipt_id="r1", total=1500, currency="USD", *, submitter="alice",
            merchant="Blue Bottle Coffee", tip=None):  # fmt: skip
    return ReceiptView(receipt_id, submitter, merchant, DAY, total, currency, None, tip, None)


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_match", ROOT / "tools" / "bench_match.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_match"] = module
    spec.loader.exec_module(module)
    return module


def test_new_receipt_finds_its_charge_with_the_batch_engines_words():
    index = MatchIndex()
    index.add_charges([charge(), charge("c2", 990, merchant="GOLDEN GATE GRILL", mcc=5812)])
    [best] = index.best_charges_for(receipt())
    batch = reconcile([charge()], [receipt()]).matches()[0]
    assert best.status is MatchStatus.AUTO
    assert best.pairs() == [("c1", "r1")]
    assert best.reasons == batch.reasons and best.score == batch.score
    assert best.explanation.startswith("amount +18% consistent with tip")


def test_new_charge_finds_its_open_receipt():
    index = MatchIndex()
    index.add_receipts([receipt(), receipt("r2", 4000, merchant="Golden Gate Grill")])
    [best, *_] = index.best_receipts_for(charge())
    assert best.pairs() == [("c1", "r1")] and best.status is MatchStatus.AUTO


def test_foreign_charge_without_original_amount_uses_the_learned_rate():
    index = MatchIndex()
    index.add_charges(
        [
            charge("c-rate", 15_000, "JPY", merchant="DELI", mcc=5812, original=10_000,
                   original_currency="USD"),
            charge("c-plain", 4_560, "JPY", merchant="GOLDEN GATE GRILL", mcc=5812),
        ]
    )  # fmt: skip
    [best, *_] = index.best_charges_for(receipt("r", 3_000, "USD", merchant="Golden Gate Grill"))
    assert best.charge_ids == ("c-plain",)
    assert "reference 150" in best.reasons[0]


def test_rejected_and_removed_items_are_not_proposed():
    index = MatchIndex(rejected={("c1", "r1")})
    index.add_charges([charge(), charge("c2")])
    assert [m.charge_ids for m in index.best_charges_for(receipt())] == [("c2",)]
    index.reject("c2", "r1")
    assert index.best_charges_for(receipt()) == []
    index.remove_charge("c2")
    assert index.open_charges == 1
    assert index.best_charges_for(receipt("r9")) == [] or all(
        m.charge_ids == ("c1",) for m in index.best_charges_for(receipt("r9"))
    )
    with pytest.raises(ValueError):
        index.add_charge(charge("c1"))


def test_ambiguous_best_is_only_a_suggestion():
    index = MatchIndex()
    index.add_charges([charge("c1"), charge("c2")])  # two identical charges
    best = index.best_charges_for(receipt())
    assert len(best) == 2 and best[0].status is MatchStatus.SUGGESTED


def test_incremental_scores_equal_batch_scores_on_every_candidate_pair():
    bench = load_bench()
    data = bench.generate(3000, seed=11)
    enc = Encoder()
    ch, rc = enc.charges(data.charges), enc.receipts(data.receipts)
    cand = find_candidates(ch, rc, enc.fx_table(), DEFAULT_THRESHOLDS)
    batch = score_candidates(ch, rc, cand, enc.signatures, DEFAULT_THRESHOLDS)
    tip_ok = tip_mcc_mask(ch.mcc[cand.charge], DEFAULT_THRESHOLDS)
    assert len(cand) > 3000
    for i in range(len(cand)):
        c, r = int(cand.charge[i]), int(cand.receipt[i])
        one = score_pair(
            amount=int(cand.charge_amount[i]),
            total=int(rc.total[r]),
            tip=int(rc.tip[r]),
            tip_mcc=bool(tip_ok[i]),
            via=int(cand.via[i]),
            rate=float(cand.rate[i]),
            lag=int(ch.day[c]) - int(rc.day[r]),
            merchant=merchant_score_bits(
                enc.signature_bits(int(ch.merchant[c])), enc.signature_bits(int(rc.merchant[r]))
            ),
            same_holder=bool(ch.holder[c] == rc.holder[r]),
            charge_last4=int(ch.last4[c]),
            receipt_last4=int(rc.last4[r]),
            th=DEFAULT_THRESHOLDS,
        )
        assert one.score == float(batch.score[i]), i
        assert (one.kind, one.valid, one.eligible) == (
            int(batch.kind[i]),
            bool(batch.valid[i]),
            bool(batch.eligible[i]),
        ), i
        assert one.merchant == pytest.approx(float(batch.merchant[i]), abs=0)
    assert np.isfinite(batch.score).all()


def test_removed_receipts_are_not_proposed_and_foreign_charges_find_receipts():
    index = MatchIndex(fx_rates={("USD", "JPY"): "150"})
    index.add_receipts(
        [
            receipt("r-usd", 3_000, "USD", merchant="Golden Gate Grill"),
            receipt("r-other", 3_000, "USD", merchant="Golden Gate Grill"),
        ]
    )
    plain = charge("c", 4_560, "JPY", merchant="GOLDEN GATE GRILL", mcc=5812)
    found = index.best_receipts_for(plain)
    assert {m.receipt_ids[0] for m in found} == {"r-usd", "r-other"}
    assert all(m.status is MatchStatus.SUGGESTED for m in found)  # look-alikes: a person picks
    index.remove_receipt("r-other")
    [best] = index.best_receipts_for(plain)
    assert best.receipt_ids == ("r-usd",) and best.status is MatchStatus.AUTO
    assert "reference 150" in best.reasons[0]
    assert index.open_receipts == 1
