"""HTML for the chat page: answers with linked markers, and the source panel.

Nothing from a document or a model is live markup: the chat renders these strings as HTML
with Markdown off, every piece of text is escaped, and the only links are the project's own
citation markers.  Bidi overrides and terminal control characters are shown as visible codes
(``<U+202E>``, ``\\x1b``) so a quote cannot reverse or hide the text after it.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from rag.references import markers
from rag.types import Answer, Citation

CSS = """
.src-card {border:1px solid #d0d7de; border-radius:8px; padding:10px 12px; margin-bottom:10px; background:#fff;}
.src-card h4 {margin:0 0 4px 0; font-size:15px;}
.src-meta {color:#57606a; font-size:13px; margin-bottom:6px;}
.src-passage {line-height:1.7; font-size:14px; white-space:pre-wrap;}
.src-passage mark, .src-article mark {background:#fff3a3; padding:1px 0;}
.src-scan img {max-width:100%; border:1px solid #d0d7de; margin-top:6px;}
.src-label {color:#57606a;}
.src-article {max-height:360px; overflow:auto; border-top:1px dashed #d0d7de; margin-top:6px; padding-top:6px;
  line-height:1.7; font-size:14px; white-space:pre-wrap;}
.src-none {color:#8a4b00; background:#fff8e6; border:1px solid #f0d59a; border-radius:8px; padding:10px 12px;}
.src-near {opacity:.85}
.cite {text-decoration:none; font-weight:600;}
.ans-items {margin:2px 0 6px 0; padding-left:1.3em;}
.ans-items li {margin:2px 0;}
.ans-head {font-weight:600; margin-top:6px;}
#chat-buttons {gap:8px; flex-wrap:nowrap;}
#chat-buttons button {white-space:nowrap; min-width:0 !important; padding:6px 8px;}
#upload .wrap {font-size:0 !important;}
#upload .wrap::before {content:"拖放文件到这里，或点击选择 · Drop files here or click"; font-size:15px;}
@media (min-width: 641px) {
  #sources {max-height:calc(100vh - 140px); overflow-y:auto !important;}
}
@media (max-width: 640px) {
  #sources, #sources-column, #chat-column {padding-left:0 !important; padding-right:0 !important;}
  .src-card {padding:8px 8px;}
  #chat .message {font-size:15px;}
  #intro h2 {font-size:19px; margin:2px 0;}
  #intro p {font-size:12px; margin:0;}
  #chat-buttons button {font-size:14px; padding:6px 2px;}
}
"""


_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with control and bidi-override characters shown as codes instead of acting."""

    def code(match: re.Match) -> str:
        c = ord(match.group(0))
        return f"\\x{c:02x}" if c < 0x100 else f"<U+{c:04X}>"

    return _HIDDEN.sub(code, text)


def _escape(text: str) -> str:
    return html.escape(visible(text), quote=True)


def text_html(text: str) -> str:
    """Plain text as HTML: escaped, controls visible, line breaks kept (a streamed answer, a message)."""
    return _escape(text).replace("\n", "<br>")


def answer_html(answer: Answer) -> str:
    """The answer text with each [n] marker a link to its source card (the quote on hover).

    An answer of several cited passages (how something was done, who spoke of it, what an
    interview covers) is shown as a list, an item per passage with its marker, under the
    article and interviewee's line when several articles answer; the text itself is unchanged.
    """
    spans = markers(answer)
    body = _listed(answer.text, spans) if len(spans) > 1 else _inline(answer.text, spans)
    if answer.notice:
        body = f"<em>{_escape(answer.notice)}</em><br><br>{body}"
    return body


def _cite(c: Citation) -> str:
    tip = _escape(f"《{c.title}》第{c.paragraph}段：{c.quote}")
    return f'<a class="cite" href="#cite-{c.n}" title="{tip}">[{c.n}]</a>'


def _inline(text: str, spans) -> str:
    parts, pos = [], 0
    for start, end, c in spans:
        parts += [text_html(text[pos:start]), _cite(c)]
        pos = end
    parts.append(text_html(text[pos:]))
    return "".join(parts)


def _listed(text: str, spans) -> str:
    """Each cited passage an item; a line before a passage's own line (《title》（who）：) a heading."""
    parts, items, pos = [], [], 0

    def flush() -> None:
        if items:
            parts.append('<ul class="ans-items">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for start, end, c in spans:
        *heads, line = text[pos:start].split("\n")
        for head in (h.strip() for h in heads):
            if head:
                flush()
                parts.append(f'<div class="ans-head">{text_html(head)}</div>')
        items.append(text_html(line.strip()) + _cite(c))
        pos = end
    flush()
    if text[pos:].strip():
        parts.append(f"<p>{text_html(text[pos:].strip())}</p>")
    return "".join(parts)


def _highlight(text: str, marks: list[tuple[int, int, str]]) -> str:
    """``text`` with each ``(start, end, anchor)`` span marked (offsets within ``text``; overlaps merged into the first)."""
    parts, pos = [], 0
    for start, end, anchor in sorted(marks):
        start, end = max(pos, start), min(len(text), end)
        if start >= end:
            continue
        attr = f' id="{anchor}"' if anchor else ""
        parts += [_escape(text[pos:start]), f"<mark{attr}>{_escape(text[start:end])}</mark>"]
        pos = end
    parts.append(_escape(text[pos:]))
    return "".join(parts)


def citation_card(
    cited: list[Citation], passage: str, passage_start: int, article: str, near: bool = False, scans: str = ""
) -> str:
    """One source card for one paragraph: title, who says it, where it ran, the paragraph with
    each quote of ``cited`` marked (and, from a scan, the scanned lines), the article.
    ``near``: sentences that came close on a refusal, numbered (n) rather than cited [n]."""
    c = cited[0]
    speaker = c.speaker or c.interviewee
    who = f" · {_escape(speaker)}" if speaker else ""
    published = " ".join(_escape(x) for x in (c.publisher, c.date) if x)
    page = f" · 第{c.page}页" if c.page else ""
    spans = "、".join(f"{x.start}–{x.end}" for x in cited)
    meta = f"{_escape(Path(c.source).name)}{' · ' + published if published else ''}{page} · 第{c.paragraph}段 · 字符 {spans}"
    marks = [(x.start - passage_start, x.end - passage_start, "") for x in cited]
    kind = "src-card src-near" if near else "src-card"
    labels = "".join(f"({x.n})" if near else f"[{x.n}]" for x in cited)
    anchors = "".join(f'<span id="cite-{x.n}"></span>' for x in cited[1:])  # each [n] link lands here
    return (
        f'<div class="{kind}" id="cite-{c.n}">{anchors}'
        f"<h4>{labels} 《{_escape(c.title)}》{who}</h4>"
        f'<div class="src-meta">{meta}</div>'
        f'<div class="src-passage">{_highlight(passage, marks)}</div>{scans}'
        f"<details><summary>在文章中查看 · show in article</summary>"
        f'<div class="src-article">{article}</div>'
        f'<a href="#art-{c.n}">↓ 跳到引文 · jump to the quote</a></details>'
        f"</div>"
    )


def article_html(text: str, paragraphs, cited: list[Citation]) -> str:
    """The article, paragraph by paragraph (paywall markers never shown), the quotes marked."""
    parts = []
    for p in paragraphs:
        body = text[p.start : p.end]
        # the speaker label before the paragraph ("记者：", "[00:00:41] 赵刚："), shown as the source has it
        before = text[text.rfind("\n", 0, p.start) + 1 : p.start]
        spoken = before.rstrip(" *_\u3000").endswith(("：", ":"))
        label = f'<span class="src-label">{_escape(before)}</span>' if spoken else ""
        marks = [(c.start - p.start, c.end - p.start, f"art-{c.n}") for c in cited if p.start <= c.start < p.end]
        parts.append(label + _highlight(body, marks))
    return "\n".join(parts)


def _closeness(hit) -> str:
    if hit.similarity is not None:
        return f"语义相似度 similarity {hit.similarity:.2f}"
    return f"检索排名分 rank score {hit.score:.3f}"


def sources_html(answer: Answer, documents) -> str:
    """The source panel for ``answer``; ``documents`` is the index's DocumentStore.  On a
    refusal: the sentences that came closest, else the closest passages, marked as not an answer."""
    if answer.found:
        return _cards(answer.citations, documents) or '<div class="src-meta">没有引文。</div>'
    head = '<div class="src-none">资料中没有找到答案。The collection does not contain an answer.</div>'
    if answer.closest:
        head += "<p><b>最接近的句子（并非答案）· Closest sentences, not an answer:</b></p>"
        return head + _cards(answer.closest, documents, near=True)
    near = "".join(
        f'<div class="src-card src-near"><h4>《{_escape(h.title)}》</h4>'
        f'<div class="src-meta">{_escape(Path(h.source).name)} · 第{h.chunk.para_start}段 · {_closeness(h)}</div>'
        f'<div class="src-passage">{_escape(h.text)}</div></div>'
        for h in answer.hits[:3]
    )
    if near:
        head += "<p><b>最接近的段落（并非答案）· Closest passages, not an answer:</b></p>"
    return head + near


def _cards(citations, documents, near: bool = False) -> str:
    """A card for each cited paragraph (its quotes marked in it, in the order first cited), its article behind a fold."""
    groups: dict[tuple, list[Citation]] = {}
    for c in citations:
        groups.setdefault((c.doc_hash, c.article, c.paragraph), []).append(c)
    cards = []
    for cited in groups.values():
        c = cited[0]
        try:
            doc = documents.load(c.doc_hash)
        except Exception:  # the document was removed since: show the quotes alone
            cards += [citation_card([x], x.quote, x.start, _escape(x.quote), near) for x in cited]
            continue
        article = doc.articles[c.article - 1] if 0 < c.article <= len(doc.articles) else None
        paragraphs = article.paragraphs if article else ()
        paragraph = next((p for p in paragraphs if p.number == c.paragraph), None)
        p_start = paragraph.start if paragraph else min(x.start for x in cited)
        p_end = paragraph.end if paragraph else max(x.end for x in cited)
        scans = "".join(dict.fromkeys(_scan_html(scanned_line(doc, x)) for x in cited))
        cards.append(
            citation_card(
                cited, doc.text[p_start:p_end], p_start, article_html(doc.text, paragraphs, cited), near, scans
            )
        )
    return "".join(cards)


def _scan_html(scan: str) -> str:
    return f'<div class="src-scan"><img alt="扫描原文 the scanned line" src="{scan}"></div>' if scan else ""


def scanned_line(doc, c: Citation) -> str:
    """The scanned line a quote from a scan was read from, as a data: URL of a PNG ('' otherwise,
    or when the scanned file is no longer where it was ingested from)."""
    import base64
    import io

    from ingest.scans import line_image

    region = next((r for r in doc.regions if r.start <= c.start < r.end), None)
    if region is None:
        return ""
    image = line_image(Path(doc.source), region)
    if image is None:
        return ""
    image.thumbnail((900, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
