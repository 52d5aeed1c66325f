"""An answer as a person pastes it: the text with its [n] markers, then numbered references.

Also where an answer's markers stand: a "[1]" inside a quoted document is text, not a marker
(the page links only real markers, the Markdown form escapes everything else).
"""

from __future__ import annotations

import re

from rag.types import Answer, Citation

REFERENCES_HEADING = "参考文献 References"
_MARKER = re.compile(r"\[(\d+)\]")
# What would become live markup, and only that (CommonMark and GitHub's extensions): emphasis, code,
# links and images, HTML and entities, strikethrough, table cells; a bare URL; and at a line's start a
# heading, quote, list item, setext underline, fence or indented code.  "互联网+政务服务" stays as written.
_INLINE = re.compile(r"[\\`*_\[\]<>~|]|!(?=\[)|&(?=#?\w+;)|(?<=[A-Za-z])(?=://)|(?<=www)(?=\.)", re.I)
_LINE_START = re.compile(r"^( {0,3})(?:([#>+=\-])|(\d{1,9})([.)]))", re.M)
_INDENT = re.compile(r"^(?: {4,}|\t)", re.M)
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def _quoted_spans(text: str, citations) -> list[tuple[int, int]]:
    spans = []
    for c in citations:
        at = text.find(c.quote) if c.quote else -1
        while at >= 0:
            spans.append((at, at + len(c.quote)))
            at = text.find(c.quote, at + 1)
    return spans


def markers(answer: Answer) -> list[tuple[int, int, Citation]]:
    """(start, end, citation) of each real marker in ``answer.text``, in order."""
    quotes = {c.n: c for c in answer.citations}
    spans = _quoted_spans(answer.text, answer.citations)
    found = []
    for match in _MARKER.finditer(answer.text):
        c = quotes.get(int(match.group(1)))
        if c is not None and not any(s <= match.start() < e for s, e in spans):
            found.append((match.start(), match.end(), c))
    return found


def reference(c: Citation) -> str:
    """One numbered reference: [n] 《title》，who says it，publisher date，paragraph (page of a scan)."""
    who = f"，{c.speaker or c.interviewee}" if c.speaker or c.interviewee else ""
    published = " ".join(part for part in (c.publisher, c.date) if part)
    where = f"，{published}" if published else ""
    page = f"（第{c.page}页）" if c.page else ""
    return f"[{c.n}] 《{c.title}》{who}{where}，第{c.paragraph}段{page}。"


def escape_markdown(text: str) -> str:
    """``text`` that any Markdown renderer shows as itself -- no link, image, code, emphasis, HTML,
    heading or list -- with a backslash only where one of those would begin."""
    text = _INLINE.sub(lambda m: "\\" + m.group() if m.group() else "\\", text)
    text = _LINE_START.sub(
        lambda m: m.group(1) + ("\\" + m.group(2) if m.group(2) else m.group(3) + "\\" + m.group(4)), text
    )
    return _INDENT.sub(lambda m: m.group().replace(" ", "&#32;", 1) if m.group().startswith(" ") else "&#9;", text)


def with_references(answer: Answer, markdown: bool = False) -> str:
    """The answer followed by its numbered references (plain text, or Markdown with the text escaped)."""
    if not markdown:
        body = answer.text
    else:
        parts, pos = [], 0
        for start, end, c in markers(answer):
            parts += [escape_markdown(answer.text[pos:start]), f"[{c.n}]"]
            pos = end
        body = "".join(parts) + escape_markdown(answer.text[pos:])
    if not answer.citations:
        return body
    refs = [
        f"[{c.n}] " + escape_markdown(reference(c).split(" ", 1)[1]) if markdown else reference(c)
        for c in answer.citations
    ]
    separator = "  \n" if markdown else "\n"
    return f"{body}\n\n{REFERENCES_HEADING}:\n" + separator.join(refs)


def history_of(turns: list[tuple[bool, str]]) -> tuple[str, list[tuple[str, str]]]:
    """A chat client's messages, (asked by the person?, text), as the question (the last message)
    and the history: each question paired with the answer that followed it, references cut off."""
    history, asked = [], None
    for by_person, text in turns[:-1]:
        if by_person:
            asked = text
        elif asked is not None:
            history.append((asked, without_references(text)))
            asked = None
    return turns[-1][1], history


def without_references(text: str) -> str:
    """An answer as a chat client sends it back in the history, made plain: references cut off, escapes undone."""
    return _ESCAPED.sub(r"\1", text.split(f"\n\n{REFERENCES_HEADING}:", 1)[0])
