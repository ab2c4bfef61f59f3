"""Card descriptors and receipt merchant names, brought to one comparable form. Pure.

A statement line reads ``SQ *BLUE BOTTLE COF #0123 SAN FRANCISCO CA``; the
receipt says ``Blue Bottle Coffee, Inc.``. `normalise_merchant` folds both to
lower-case words without the payment processor, store number, city/state
suffix or corporate form (``blue bottle cof`` / ``blue bottle coffee``), and
`merchant_similarity` compares the two by character shingles, generous to a
descriptor the network truncated. `merchant_signature` packs the shingles into
a 256-bit fingerprint so that millions of pairs can be compared with numpy.

Width and script: NFKC folds full-width Latin and digits (``ＢＬＵＥ``) and
half-width katakana (``ｽﾀｰﾊﾞｯｸｽ``) before anything else; a few chains that
print a Japanese name on the receipt and a romanised one on the statement are
aliased (``スターバックス`` → ``starbucks``).
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from functools import lru_cache

__all__ = [
    "SIGNATURE_WORDS",
    "merchant_key",
    "merchant_signature",
    "merchant_similarity",
    "normalise_merchant",
    "shingles",
    "signature_bits",
    "signature_of",
]

SIGNATURE_BITS = 256
SIGNATURE_WORDS = SIGNATURE_BITS // 64

# Payment facilitators whose prefix hides the real merchant: "SQ *BLUE BOTTLE" is Blue Bottle.
_PROCESSORS = (
    "sq",
    "tst",
    "toast",
    "paypal",
    "pp",
    "sp",
    "iz",
    "izettle",
    "zettle",
    "sumup",
    "wpy",
    "cko",
    "dri",
    "pos",
    "py",
    "stripe",
    "clover",
    "goog",
    "google",
)
_PROCESSOR_PREFIX = re.compile(
    r"^(?:"
    + "|".join(sorted({re.escape(p.strip()) for p in _PROCESSORS}, key=len, reverse=True))
    # "SQ *X", "TST* X", "PAYPAL *X", "SQ*X"
    + r")\s*\*\s*"
)
# Brands that print themselves before the "*" and noise after it: "UBER *TRIP", "AMZN Mktp US*2K3".
_BRAND_STAR = re.compile(r"^(uber|lyft|doordash|netflix|spotify|audible|kindle|apple)\s*\*.*$")
_AMAZON = re.compile(
    r"^(?:amzn|amazon)(?:\s*mktp|\s*marketplace|\s*digital|\s*retail|\s*prime|\.com|\.co\.jp|"
    r"\s*mktplace|\s*web services|\s*aws)?\b.*$|^アマゾン.*$|^amazon$"
)
_AMAZON_RAW = re.compile(r"\s*(?:amzn|amazon)\b", re.IGNORECASE)
_STORE_NUMBER = re.compile(r"(?:#|no\.?\s*|store\s*|str\s*|nr\.?\s*|№\s*)\d+\b")
_PHONE = re.compile(r"\b\d{2,4}[-.\s]\d{3,4}[-.\s]\d{3,4}\b")
_URL_TAIL = re.compile(r"\b(?:www\.)?([a-z0-9-]+)\.(?:com|net|org|co\.jp|jp|co|io)(?:/\S*)?\b")
_APOSTROPHE = re.compile(r"['’`]")
_NON_WORD = re.compile(r"[^\w\u3040-\u30ff\u3400-\u9fff]+")
_HAS_DIGIT = re.compile(r"\d")
_JAPANESE_CORPORATE = re.compile(r"株式会社|有限会社|合同会社|合資会社|\(株\)|\(有\)|㈱|㈲")
_JAPANESE_BRANCH = re.compile(r"(?:[\u3400-\u9fff\u30a0-\u30ff]{1,8})(?:支店|店|営業所)$")

_CORPORATE_WORDS = frozenset(
    {
        "inc",
        "incorporated",
        "llc",
        "ltd",
        "limited",
        "co",
        "corp",
        "corporation",
        "company",
        "gmbh",
        "kk",
        "plc",
        "sa",
        "sas",
        "sarl",
        "ag",
        "bv",
        "nv",
        "pty",
        "pte",
        "lp",
        "llp",
        "the",
    }
)
_US_STATES = frozenset(
    "al ak az ar ca co ct de fl ga hi id il in ia ks ky la me md ma mi mn ms mo mt ne nv nh nj "
    "nm ny nc nd oh ok or pa ri sc sd tn tx ut vt va wa wv wi wy dc".split()
)
_COUNTRIES = frozenset(
    "japan us usa jp jpn gb gbr uk de deu fr fra sg sgp hk au aus ca can".split()
)
# Cities that descriptors append; only ever stripped from the end, never the only word left.
_CITIES = frozenset(
    """tokyo osaka nagoya kyoto yokohama kobe fukuoka sapporo sendai kawasaki chiyoda minato
    shinjuku shibuya chuo kasugai narita haneda seattle portland chicago boston austin denver
    dallas houston miami atlanta oakland berkeley london paris berlin munich singapore sydney
    toronto vancouver""".split()
)
_TWO_WORD_CITIES = frozenset(
    {
        "san francisco",
        "new york",
        "los angeles",
        "san jose",
        "san diego",
        "las vegas",
        "hong kong",
        "washington dc",
        "salt lake",
        "palo alto",
        "mountain view",
    }
)
# Chains whose receipts print a Japanese name while the card network prints a romanised one.
_ALIASES: dict[str, str] = {
    "スターバックスコーヒー": "starbucks coffee",
    "スターバックス": "starbucks",
    "セブンイレブン": "7 eleven",
    "セブン-イレブン": "7 eleven",
    "ローソン": "lawson",
    "ファミリーマート": "familymart",
    "マクドナルド": "mcdonalds",
    "ドトールコーヒー": "doutor coffee",
    "ドトール": "doutor",
    "タリーズコーヒー": "tullys coffee",
    "ヨドバシカメラ": "yodobashi camera",
    "ビックカメラ": "bic camera",
    "ユニクロ": "uniqlo",
    "日本交通": "nihon kotsu",
    "東京無線": "tokyo musen",
    "吉野家": "yoshinoya",
    "すき家": "sukiya",
    "ルノアール": "renoir",
    "ジャパン": "japan",
}
_ALIAS_PATTERN = re.compile("|".join(sorted(map(re.escape, _ALIASES), key=len, reverse=True)))


def _strip_suffixes(words: list[str]) -> list[str]:
    """Drop trailing state, country, city, corporate form and store words; keep at least one."""
    changed = True
    while changed and len(words) > 1:
        changed = False
        last = words[-1]
        pair = " ".join(words[-2:]) if len(words) > 2 else ""
        if pair in _TWO_WORD_CITIES:
            del words[-2:]
            changed = True
        elif (
            last in _US_STATES
            or last in _COUNTRIES
            or last in _CITIES
            or last in _CORPORATE_WORDS
            or _HAS_DIGIT.search(last)
            or _JAPANESE_BRANCH.fullmatch(last)
        ):
            del words[-1]
            changed = True
    return words


def _strip_accents(text: str) -> str:
    """'café' → 'cafe'. Only Latin combining marks go: katakana voicing marks stay."""
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(ch for ch in decomposed if not "\u0300" <= ch <= "\u036f")
    return unicodedata.normalize("NFC", kept)


@lru_cache(maxsize=200_000)
def normalise_merchant(text: str) -> str:
    """The comparable form of a descriptor or merchant name: lower-case words joined by spaces.

    >>> normalise_merchant("SQ *BLUE BOTTLE COF #0123 SAN FRANCISCO CA")
    'blue bottle cof'
    >>> normalise_merchant("Blue Bottle Coffee, Inc.")
    'blue bottle coffee'
    """
    if _AMAZON_RAW.match(text):  # the most frequent descriptor family: an order code each
        return "amazon"
    s = unicodedata.normalize("NFKC", text).casefold().strip()
    if not s.isascii():
        s = _strip_accents(s)
        s = _JAPANESE_CORPORATE.sub(" ", s)
        s = _ALIAS_PATTERN.sub(lambda m: " " + _ALIASES[m.group(0)] + " ", s).strip()
    # each pattern only where its trigger character occurs: most names have none
    if "*" in s:
        s = _PROCESSOR_PREFIX.sub("", s)
    if _AMAZON.match(s):
        return "amazon"
    if "*" in s:
        s = _BRAND_STAR.sub(r"\1", s)
    if "." in s:
        s = _URL_TAIL.sub(r"\1", s)
    if _HAS_DIGIT.search(s):
        s = _PHONE.sub(" ", s)
        s = _STORE_NUMBER.sub(" ", s)
    if "'" in s or "’" in s or "`" in s:
        s = _APOSTROPHE.sub("", s)
    words = [w for w in _NON_WORD.sub(" ", s).replace("_", " ").split() if w]
    # Reference codes and store numbers anywhere but the first word ("7 eleven" keeps its 7).
    words = words[:1] + [w for w in words[1:] if not _HAS_DIGIT.search(w)]
    while len(words) > 1 and words[0] in _CORPORATE_WORDS:
        del words[0]
    words = _strip_suffixes(words)
    return " ".join(words)


_CJK = re.compile(r"[\u3040-\u9fff]")


def shingles(normalised: str) -> frozenset[str]:
    """Character trigrams of each word (bigrams for Japanese words), padded at word edges."""
    out: set[str] = set()
    for word in normalised.split():
        if _CJK.search(word):
            padded = word if len(word) > 1 else f" {word}"
            out.update(padded[i : i + 2] for i in range(len(padded) - 1))
        else:
            padded = f" {word} "
            out.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return frozenset(out)


def _similarity(inter: int, na: int, nb: int) -> float:
    if na == 0 or nb == 0:
        return 0.0
    dice = 2.0 * inter / (na + nb)
    smaller = min(na, nb)
    # A truncated descriptor is contained in the full name: count that, but only for a
    # descriptor long enough that containment means something.
    containment = inter / smaller if smaller >= 4 else dice
    return max(dice, 0.92 * containment)


def merchant_similarity(a: str, b: str) -> float:
    """Similarity (0..1) of two raw merchant strings after normalisation, on exact shingle sets."""
    na, nb = normalise_merchant(a), normalise_merchant(b)
    if na and na == nb:
        return 1.0
    sa, sb = shingles(na), shingles(nb)
    return _similarity(len(sa & sb), len(sa), len(sb))


def merchant_key(normalised: str) -> str:
    """The blocking key of a normalised merchant: its first word ('' for none)."""
    return normalised.split(" ", 1)[0]


_WORD_MASK = (1 << 64) - 1


@lru_cache(maxsize=500_000)
def _word_bits(word: str) -> int:
    bits = 0
    for shingle in shingles(word):
        bits |= 1 << (zlib.crc32(shingle.encode()) % SIGNATURE_BITS)
    return bits


@lru_cache(maxsize=200_000)
def signature_bits(normalised: str) -> int:
    """A 256-bit fingerprint of a normalised merchant's shingles, as one Python int.

    Shingles never cross words, so the fingerprint is the union of its words' (cached).
    Bit positions come from CRC-32, not ``hash()``: they must not change between processes.
    """
    bits = 0
    for word in normalised.split():
        bits |= _word_bits(word)
    return bits


def signature_of(normalised: str) -> tuple[int, ...]:
    """`signature_bits` as four 64-bit words, lowest first."""
    bits = signature_bits(normalised)
    return tuple((bits >> (64 * i)) & _WORD_MASK for i in range(SIGNATURE_WORDS))


def merchant_signature(text: str) -> tuple[int, ...]:
    """The fingerprint of a raw descriptor or merchant name (see `signature_of`)."""
    return signature_of(normalise_merchant(text))
