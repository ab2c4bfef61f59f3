"""The card directory: which principal holds which corporate card.

Issuer files print a cardholder *name* ("HANAKO SATO") and the last four digits; people
call Seisan with a *principal* name ("aiko"). The directory, a TOML file, joins them::

    [[card]]
    last4 = "4242"
    principal = "aiko"
    name = "Hanako Sato"              # optional: as the issuer prints it
    stripe_card = "ic_1Nn…"           # optional: Stripe Issuing card id
    stripe_cardholder = "ich_1Nn…"    # optional: Stripe Issuing cardholder id

A charge whose card the directory does not know keeps the printed name as cardholder
(the generic CSV can carry principal names directly). Never put a full card number here.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from seisan_cards.domain.ports import CardDirectory


class DirectoryError(ValueError):
    """The directory file is malformed; the message names the entry."""


@dataclass(frozen=True)
class CardEntry:
    last4: str
    principal: str
    name: str = ""
    stripe_card: str = ""
    stripe_cardholder: str = ""


def _fold(name: str) -> str:
    return " ".join(name.casefold().split())


class StaticCardDirectory(CardDirectory):
    def __init__(self, entries: list[CardEntry] | None = None) -> None:
        self.entries = list(entries or [])

    @classmethod
    def load(cls, path: Path | None) -> StaticCardDirectory:
        """Read the TOML file at ``path``; no path means an empty directory."""
        if path is None:
            return cls()
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DirectoryError(f"card directory {path}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise DirectoryError(f"card directory {path}: not valid TOML: {exc}") from None
        entries = []
        for number, raw in enumerate(document.get("card", []), start=1):
            where = f"card directory {path}, card #{number}"
            if not isinstance(raw, dict):
                raise DirectoryError(f"{where}: expected a table")
            last4, principal = str(raw.get("last4", "")), str(raw.get("principal", ""))
            if not re.fullmatch(r"[0-9]{4}", last4):
                raise DirectoryError(f"{where}: last4 must be exactly four digits")
            if not principal.strip():
                raise DirectoryError(f"{where}: principal is required")
            entries.append(
                CardEntry(
                    last4=last4,
                    principal=principal,
                    name=str(raw.get("name", "")),
                    stripe_card=str(raw.get("stripe_card", "")),
                    stripe_cardholder=str(raw.get("stripe_cardholder", "")),
                )
            )
        return cls(entries)

    def principal_for(self, card_last4: str, printed_name: str) -> str | None:
        by_card = [e for e in self.entries if e.last4 == card_last4]
        if len({e.principal for e in by_card}) == 1:
            return by_card[0].principal
        folded = _fold(printed_name)
        if not folded:
            return None
        named = [e for e in (by_card or self.entries) if e.name and _fold(e.name) == folded]
        return named[0].principal if len({e.principal for e in named}) == 1 else None

    def stripe_card(self, card_id: str) -> tuple[str, str] | None:
        for e in self.entries:
            if card_id and e.stripe_card == card_id:
                return e.last4, e.principal
        return None

    def stripe_cardholder(self, cardholder_id: str) -> str | None:
        for e in self.entries:
            if cardholder_id and e.stripe_cardholder == cardholder_id:
                return e.principal
        return None
