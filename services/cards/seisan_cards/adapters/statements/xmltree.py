"""A small element tree with line numbers, built with expat and closed to DTD tricks.

Statement feeds come from outside: a document type declaration (the door to
entity-expansion bombs and external entities) is refused outright, and every
element remembers its line so a refusal can name it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.parsers import expat

from seisan_cards.adapters.statements.common import reject


@dataclass
class Element:
    tag: str
    attrib: dict[str, str]
    line: int
    children: list[Element] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts).strip()

    def child(self, tag: str) -> Element | None:
        return next((c for c in self.children if c.tag == tag), None)

    def iter(self, tag: str) -> Iterator[Element]:
        """Descendants named ``tag``, in document order (not ``self``)."""
        for c in self.children:
            if c.tag == tag:
                yield c
            yield from c.iter(tag)

    def first(self, tag: str) -> Element | None:
        return next(self.iter(tag), None)


class _Refused(Exception):
    pass


def parse_xml(data: bytes) -> Element:
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    stack: list[Element] = []
    roots: list[Element] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        element = Element(tag, dict(attrib), parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)

    def end(tag: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            stack[-1].parts.append(text)

    def refuse_doctype(*_args: object) -> None:
        raise _Refused("a document type declaration (DTD) is not accepted in a statement feed")

    def refuse_entity(*_args: object) -> None:
        raise _Refused("entity declarations are not accepted in a statement feed")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_entity  # type: ignore[assignment]
    try:
        parser.Parse(data, True)
    except _Refused as err:
        raise reject(str(err), line=parser.CurrentLineNumber) from None
    except expat.ExpatError as err:
        raise reject(
            f"not well-formed XML ({expat.errors.messages[err.code]})", line=err.lineno
        ) from None
    if not roots:
        raise reject("no XML root element", line=1)
    return roots[0]
