"""Broad answers on parsed interviews with fakes: points and headings, who a question names,
open, who-said, summary and "more" answers, every quote verbatim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.chunk import chunk_document
from ingest.parse import parse_file
from rag.articles import named_people, read_article
from rag.passages import MoreAnswerer, PassageAnswerer, SummaryAnswerer, WhoSaidAnswerer
from rag.question import OPEN, SUMMARY, WHO, Question
from rag.relevance import Evidence, Logistic, RelevanceModel
from rag.terms import term_coverage, term_weights
from rag.topics import Reader
from rag.types import Hit
from tests.conftest import CORPUS

WATER = Path(__file__).parent / "data" / "interviews" / "water_interview.txt"


@pytest.fixture(scope="module")
def documents():
    return [parse_file(CORPUS), parse_file(WATER)]


@pytest.fixture(scope="module")
def chunks(documents):
    return [c for doc in documents for c in chunk_document(doc)]


def _text(documents, citation) -> str:
    doc = next(d for d in documents if d.content_hash == citation.doc_hash)
    return doc.text[citation.start : citation.end]


# Relevant when the best passage holds more than half of the topic's weighted terms.
HALF = RelevanceModel(Logistic((20.0, 0.0), -10.0, 0.5), Logistic((1.0,), 0.0, 0.5))


@pytest.fixture(scope="module")
def reader(chunks):
    by_article: dict = {}
    for c in chunks:
        by_article.setdefault((c.source, c.article), []).append(c)
    people = {c.interviewee for c in chunks if c.interviewee}
    return Reader(
        article=lambda source, article: by_article[(source, article)],
        term_weights=lambda text: term_weights(text, lambda t: 1.0),
        similarity=lambda query, texts: np.zeros(len(texts)),
        background=lambda text: 0.0,
        relevance=HALF,
        people=lambda: people,
    )


def _hits(chunks, question: str, reader: Reader, who: str = "", k: int = 8) -> list[Hit]:
    """A stand-in retriever: chunks by their coverage of the question's terms (within ``who``)."""
    weights = reader.term_weights(question)
    inside = [c for c in chunks if who in c.interviewee]
    ranked = sorted(inside, key=lambda c: -term_coverage(weights, c.indexed_text.lower()))
    return [Hit(c, 1.0 / (n + 1)) for n, c in enumerate(ranked[:k])]


def test_an_interview_reads_as_points_with_headings(chunks):
    housing = [c for c in chunks if "住建局" in c.interviewee]
    lines = read_article(housing)
    headings = [ln.text for ln in lines if ln.heading]
    assert headings == ["多措并举攻坚克难。", "推动简化审批改革。", "健全放管结合模式。", "提高企业服务质量。"]
    framing = [ln.text for ln in lines if ln.framing]
    assert framing[0].startswith("“优化营商环境") and "接受记者采访时说" in framing[1]
    assert not any(ln.framing for ln in lines if "两问一学" in ln.text)  # the last point is content, not a closing
    water = read_article([c for c in chunks if "陈立新" in c.interviewee])
    assert all(ln.asked for ln in water if ln.text.startswith("记者"))
    assert [ln.text for ln in water if ln.heading][:2] == ["一是扩充水源。", "二是改造管网。"]
    assert water[-1].framing and water[-1].text.startswith("下一步")


def test_who_a_question_names_is_read_from_the_interviewees_lines(chunks):
    people = {c.interviewee for c in chunks}
    assert list(named_people("市住建局在跨境电商方面做了什么？", people)) == ["市住建局"]
    assert list(named_people("县里怎样推动改革落地？", people)) == ["县里"]
    assert set(named_people("开发区和水务局各自怎么推进改革？", people)) == {"开发区", "水务局"}
    assert named_people("哪些受访者提到了改革？", people) == {}  # "改革" of 发展和改革委员会 names no one
    assert named_people("总结一下发改委主任的采访。", people) == {}  # nor "改委主任" of 发改委主任
    assert list(named_people("陈立新提出了哪些目标？", people)) == ["陈立新"]


def test_open_answer_quotes_the_point_on_the_topic(documents, chunks, reader):
    q = Question.parse("住建局在提高企业服务质量上做了什么？")
    assert q.kind == OPEN
    answer = PassageAnswerer(reader).answer(q, _hits(chunks, q.text, reader, "住建局"))
    assert answer.found and 2 <= len(answer.citations) <= 5
    assert "服务专员" in answer.text and "提高企业服务质量。" not in answer.text  # content, not the heading
    assert all(_text(documents, c) == c.quote for c in answer.citations)


def test_open_answer_after_a_reporters_question_quotes_the_answer_not_the_question(documents, chunks, reader):
    q = Question.parse("水务局在水环境治理方面有哪些新举措？")
    answer = PassageAnswerer(reader).answer(q, _hits(chunks, q.text, reader, "陈立新"))
    assert answer.found and "河长制" in answer.text and "黑臭水体" in answer.text
    assert not any(c.quote.startswith("记者") for c in answer.citations)


def test_open_answer_refuses_a_topic_the_scope_lacks(chunks, reader):
    q = Question.parse("招商引资有什么举措？")
    answer = PassageAnswerer(reader).answer(q, _hits(chunks, q.text, reader, "陈立新"))
    assert not answer.found and answer.citations == []


def test_who_said_decides_article_by_article(documents, chunks, reader):
    q = Question.parse("哪些受访者谈到了防汛？")
    assert q.kind == WHO
    answer = WhoSaidAnswerer(reader).answer(q, _hits(chunks, q.text, reader, k=60))
    assert answer.found and {c.interviewee for c in answer.citations} == {"市水务局党组书记、局长陈立新"}
    q = Question.parse("哪几位受访者提到了营商环境？")
    answer = WhoSaidAnswerer(reader).answer(q, _hits(chunks, q.text, reader, k=60))
    people = {c.interviewee for c in answer.citations}
    assert len(people) == len(answer.citations) >= 3  # one sentence each
    assert all(f"《{c.title}》" in answer.text for c in answer.citations)
    assert all(_text(documents, c) == c.quote for c in answer.citations)


def test_summary_is_the_position_and_the_headings(chunks, reader):
    q = Question.parse("住建局局长的采访讲了哪几个方面？")
    assert q.kind == SUMMARY
    answer = SummaryAnswerer(reader).answer(q, _hits(chunks, q.text, reader, "住建局"))
    quotes = [c.quote for c in answer.citations]
    assert quotes[0].startswith("近年来，市住建局") and quotes[1:] == [
        "多措并举攻坚克难。",
        "推动简化审批改革。",
        "健全放管结合模式。",
        "提高企业服务质量。",
    ]


def test_more_says_what_was_not_said_and_then_that_there_is_no_more(chunks, reader):
    passages = PassageAnswerer(reader)
    more = MoreAnswerer({OPEN: passages})
    first_q = "水务局在防汛方面做了什么？"
    hits = _hits(chunks, first_q, reader, "陈立新")
    first = passages.answer(Question.parse(first_q), hits)
    history = [(first_q, first.text)]
    said = {c.quote for c in first.citations}
    answers = []
    for _ in range(4):
        answer = more.answer(Question.parse("还有呢？", history=history), hits)
        answers.append(answer)
        if not answer.found:
            break
        assert not said & {c.quote for c in answer.citations}
        said |= {c.quote for c in answer.citations}
        history.append(("还有呢？", answer.text))
    assert not answers[-1].found and answers[-1].text == "关于这个问题，资料中没有更多内容了。"


def test_evidence_reads_the_best_passage(chunks, reader):
    weights = reader.term_weights("防汛")
    hits = [Hit(c, 0.0, similarity=0.8) for c in chunks if "陈立新" in c.interviewee]
    evidence = Evidence.of(weights, hits, background=0.75)
    assert evidence.coverage == 1.0 and evidence.lift == pytest.approx(0.05)
    assert Evidence.of(weights, [], 0.0) == Evidence(0.0, -1.0)
    assert Evidence.of({}, hits, 0.75).coverage == 1.0  # no topic: the scope itself is the topic


def test_who_said_says_how_many_it_did_not_list(chunks, reader, monkeypatch):
    import rag.passages

    monkeypatch.setattr(rag.passages, "MAX_ARTICLES", 2)
    q = Question.parse("哪几位受访者提到了营商环境？")
    answer = WhoSaidAnswerer(reader).answer(q, _hits(chunks, q.text, reader, k=60))
    assert len({c.interviewee for c in answer.citations}) == 2
    assert answer.notice.startswith("另有") and "未一一列出" in answer.notice
