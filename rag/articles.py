"""An article read as its interviewee speaks: sentences, points and headings, and who a question names.

A chunk is a retrieval unit; an interview's structure is its points -- a paragraph, or a
numbered part of one ("一是……" up to "二是") -- each opened by a heading when a short first
sentence is followed by more.  The passage answerers (``rag.passages``) read whole articles
through this.  Who a question is about is read from the interviewees' own lines ("住建局"
names "市住建局局长xxx"), which jieba alone does not split reliably ("市住建局" -> 市住 / 建局).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from rag.features import tags
from rag.text import has_cjk
from rag.types import Chunk, Hit

# A point of an interview opens a paragraph or is numbered inside one ("xxx：一是高位推动，…").
_POINT = re.compile(
    r"^(?:[^，,。：:\s]{1,12}[：:])?\s*(?:[一二三四五六七八九十]+是|首先|其次|再次|最后|第[一二三四五六七八九十]+[，,、是]"
    r"|[一二三四五六七八九十]+[、.．]|\d{1,2}[、.．](?!\d))"
)
_SPEAKER = re.compile(r"^[^，,。：:\s]{1,12}[：:]\s*")
# A reporter's or host's question, however it is labelled.
_ASKER = re.compile(r"^(?:记者|问|主持人|本报|Q)\s*[：:]", re.I)
# The article's framing: who spoke to whom, when ("……在接受记者采访时说。", "本报记者专访了……").
_FRAMING = re.compile(r"记者|采访|专访|访谈|本报|日前|近日")
# The closing paragraph looks ahead ("下一步，我们将……", "蓝图已经绘就……", "全市教育系统将……").
_CLOSING = re.compile(r"(?:下一步|今后|未来|接下来|蓝图|展望|站在新的?起点)|[^。，,；;]{0,16}将")
HEADING_CHARS = 32  # a point's first sentence this short, with more after it, is its heading
FRAMING_CHARS = 60  # a framing sentence longer than this also states a position, and is kept


@dataclass(frozen=True)
class Line:
    """A sentence of an article, as the passage answerers read it: ``document_text[start:end]``."""

    hit: Hit  # the chunk that holds it (a citation is made from it)
    start: int
    end: int
    text: str
    paragraph: int
    point: int  # which point of the article (a paragraph, or a numbered part of one), 0-based
    opens: bool  # the first sentence of its point
    asked: bool  # a reporter's question: context, never an answer
    framing: bool = False  # the article's framing or closing, quoted only in a summary
    heading: bool = False  # a short first sentence with more after it


def read_article(chunks: list[Chunk]) -> list[Line]:
    """The sentences of an article's chunks, once each and in reading order, with their points."""
    seen: set[int] = set()
    raw: list[tuple[Hit, int, int, str, int]] = []
    for chunk in sorted(chunks, key=lambda c: c.start):
        hit = Hit(chunk, 0.0)
        for start, end in chunk.sentences():
            if start in seen:
                continue
            seen.add(start)
            text = chunk.text[start - chunk.start : end - chunk.start]
            raw.append((hit, start, end, text, chunk.paragraph_at(start)))
    raw.sort(key=lambda r: r[1])
    lines: list[Line] = []
    point, paragraph, asked, closing = -1, None, False, False
    paragraphs = [r[4] for r in raw]
    first, last = (min(paragraphs), max(paragraphs)) if paragraphs else (0, 0)
    for hit, start, end, text, number in raw:
        new_paragraph = number != paragraph
        body = _SPEAKER.sub("", text) if new_paragraph else text
        if new_paragraph:
            asked = number in hit.chunk.asked or bool(_ASKER.match(text))
            closing = number == last and number != first and bool(_CLOSING.match(body))
            paragraph = number
        opens = new_paragraph or bool(_POINT.match(text))
        point += opens
        framing = (number == first and not asked and _is_framing(body)) or closing
        lines.append(
            Line(
                hit,
                start,
                end,
                text,
                number,
                point,
                opens,
                asked or text.rstrip('”"」 ').endswith(("？", "?")),
                framing,
            )
        )
    # A point's first sentence is its heading when it is short and the point goes on (the
    # article's opening paragraph introduces it and has none: "发展是第一要务，改革是根本动力。").
    following = {ln.point for ln in lines if not ln.opens}
    return [
        replace(ln, heading=True)
        if ln.opens
        and ln.point in following
        and ln.paragraph != first
        and len(_SPEAKER.sub("", ln.text)) <= HEADING_CHARS
        and not ln.asked
        else ln
        for ln in lines
    ]


def structured(lines: list[Line]) -> bool:
    """Whether an article has an interview's shape: headings, a reporter's questions or numbered
    points.  A plain paragraph (an encyclopedia's, a transcript without them) has no point to
    quote as a whole: a "how" question about it is answered like a factoid."""
    return any(ln.heading or ln.asked or _POINT.match(ln.text) for ln in lines)


def _is_framing(text: str) -> bool:
    quoted_only = text.startswith(("“", '"', "「")) and text.rstrip("。").endswith(("”", '"', "」"))
    return quoted_only or (bool(_FRAMING.search(text)) and len(text) <= FRAMING_CHARS)


# "县里" is the county, "市里" the city: the interviewee whose line names it.
_DEIXIS = {"县里": "县", "市里": "市", "省里": "省", "区里": "区"}
_PIECE_MIN = 2


def named_people(text: str, people: set[str] | list[str]) -> dict[str, list[str]]:
    """The parts of ``text`` that name interviewees by part of their line ("住建局" for
    "市住建局局长xxx", "于晓峰", "县里" for "xx县委书记…"), each with the interviewees it names.

    A part names someone only when it picks out fewer than half of them ("局长", "书记" do not);
    the longest such part wins over the parts it contains.
    """
    pieces = _pieces_of(frozenset(p for p in people if p))
    if not pieces:
        return {}
    found: dict[str, list[str]] = {}
    lowered = text.lower()
    for word, stands_for in _DEIXIS.items():
        if word in lowered and stands_for in pieces:
            found[word] = pieces[stands_for]
    words = tags(text)
    names = {word.lower() for word, flag in words if flag.startswith("nr") and len(word) >= 2}
    whole = {word.lower() for word, _ in words}
    starts, at = set(), 0
    for word, _ in words:
        starts.add(at)
        at += len(word)
    taken: set[int] = set()  # characters of the question already read as a name
    for length in range(min(_PIECE_MAX, len(lowered)), _PIECE_MIN - 1, -1):
        for i in range(len(lowered) - length + 1):
            piece = lowered[i : i + length]
            # a name starts where a word does ("改委主任" of "发改委主任" names no one)
            if piece not in pieces or i not in starts or taken & set(range(i, i + length)):
                continue
            # an organisation or a title ("住建局", "开发区", "县委书记") or a person's name, not a
            # word an organisation's name happens to hold ("改革" of "发展和改革委员会")
            # ("改委" of "发改委" is part of a word, not a name: a two-character part must be a whole word)
            if (ORG_END.search(piece) or piece in names) and (len(piece) > 2 or piece in whole):
                found[piece] = pieces[piece]
                taken |= set(range(i, i + length))
    return found


_PIECE_MAX = 12
# Parts of an interviewee's line that name no one in particular.
_TITLE_ONLY = re.compile(r"(?:党组|党工委|书记|主任|局长|委员|主席|副|、|，|x)+")


@lru_cache(maxsize=4)
def _pieces_of(people: frozenset[str]) -> dict[str, list[str]]:
    """Every part of the interviewees' lines that picks out fewer than half of them, with whom it names."""
    named: dict[str, set[str]] = {}
    for person in people:
        line = person.lower()
        for length in range(1, _PIECE_MAX + 1):
            for i in range(len(line) - length + 1):
                named.setdefault(line[i : i + length], set()).add(person)
    return {
        piece: sorted(who)
        for piece, who in named.items()
        if (len(who) < len(people) / 2 or len(people) == 1)
        and has_cjk(piece)
        and (len(piece) >= _PIECE_MIN or piece in _DEIXIS.values())
        and not _TITLE_ONLY.fullmatch(piece)
    }


_ACTOR_FLAGS = {"nr", "nrfg", "nrt", "ns", "nt"}
ORG_END = re.compile(
    r"[局委区县厅院部办所校馆会处司省市镇村]$|中心$|公司$|集团$|大学$|学院$|书记$|局长$|主任$|市长$|县长$"
)


def actor_tags(text: str) -> list[tuple[str, str]]:
    """(word, part of speech) of the organisations, places and people ``text`` names ("住建局",
    "开发区", "于晓峰"): whose interview a question is about, unlike the topic words jieba also
    tags as proper nouns."""
    found = {
        word.lower(): flag
        for word, flag in tags(text)
        # an organisation's name is longer than its kind ("发改委", "开发区"; not "大学", "城市")
        if len(word) >= 2 and (flag in _ACTOR_FLAGS or (len(word) >= 3 and ORG_END.search(word)))
    }
    return list(found.items())


def actors(text: str) -> tuple[str, ...]:
    """The words of ``actor_tags``."""
    return tuple(word for word, _ in actor_tags(text))
