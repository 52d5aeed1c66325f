"""Chunking: whole sentences, exact offsets, questions kept with their answers."""

from __future__ import annotations

import re

import pytest

from ingest.chunk import chunk_document, split_sentences
from ingest.parse import parse_file, split_articles
from rag.types import Paragraph
from tests.conftest import CORPUS

SENTENCE_END = re.compile(r"[。！？；!?;…][”’\"」』）)】]*$")


@pytest.fixture(scope="module")
def corpus():
    return parse_file(CORPUS)


@pytest.mark.parametrize("size", [120, 300, 500])
def test_chunks_are_exact_slices_of_whole_sentences(corpus, size):
    chunks = chunk_document(corpus, size=size, overlap=1)
    assert chunks
    paragraph_starts = {p.start for a in corpus.articles for p in a.paragraphs}
    paragraph_ends = {p.end for a in corpus.articles for p in a.paragraphs}
    for c in chunks:
        assert corpus.text[c.start : c.end] == c.text
        assert "##paid" not in c.text
        sentences = split_sentences(corpus.text, _paragraph_of(corpus, c.start))
        inside_long = any(s.end - s.start > size and s.start <= c.start < s.end for s in sentences)
        # starts at a paragraph start or right after a sentence end
        before = corpus.text[: c.start].rstrip()
        assert c.start in paragraph_starts or SENTENCE_END.search(before) or inside_long, c.text[:20]
        # ends at a paragraph end or a sentence end, unless one sentence outgrew the size
        if c.end not in paragraph_ends and not SENTENCE_END.search(c.text):
            assert len(c.text) <= size
            ending = split_sentences(corpus.text, _paragraph_of(corpus, c.end - 1))
            assert any(s.end - s.start > size and s.start < c.end <= s.end for s in ending)


def _paragraph_of(doc, offset) -> Paragraph:
    return next(p for a in doc.articles for p in a.paragraphs if p.start <= offset <= p.end)


def test_no_chunk_spans_two_articles(corpus):
    for c in chunk_document(corpus):
        article = corpus.articles[c.article - 1]
        assert article.start <= c.start and c.end <= article.end
        assert c.title == article.title


def test_chunk_sizes_stay_near_the_target(corpus):
    chunks = chunk_document(corpus, size=300)
    assert max(len(c.text) for c in chunks) <= 300
    assert sum(len(c.text) for c in chunks) / len(chunks) > 150


def test_question_starts_a_chunk_and_shares_it_with_its_answer(corpus):
    chunks = chunk_document(corpus, size=200)
    questions = [p for a in corpus.articles for p in a.paragraphs if p.role == "question"]
    assert len(questions) == 6
    for q in questions:
        holder = next(c for c in chunks if c.start == q.start)
        assert holder.role == "qa"
        assert holder.end > q.end  # the answer's start is in the same chunk
        assert holder.speaker == corpus.articles[holder.article - 1].interviewee  # the answer is theirs


def test_overlap_repeats_one_sentence(corpus):
    chunks = chunk_document(corpus, size=300, overlap=1)
    overlapping = [(a, b) for a, b in zip(chunks, chunks[1:]) if a.article == b.article and b.start < a.end]
    assert overlapping
    for a, b in overlapping:
        assert a.text.endswith(b.text[: a.end - b.start])
    no_overlap = chunk_document(corpus, size=300, overlap=0)
    assert all(b.start >= a.end for a, b in zip(no_overlap, no_overlap[1:]))


def test_overlong_sentence_is_split_at_clauses():
    text = "，".join(["这是一个很长的分句用于测试"] * 40) + "。结尾。"
    doc = split_articles(text, "/x/long.txt")
    chunks = chunk_document(doc, size=100, overlap=0)
    assert all(len(c.text) <= 100 for c in chunks)
    assert "".join(c.text for c in chunks) == text
    assert all(c.text.endswith(("，", "。")) for c in chunks)


def test_chunk_ids_follow_content(corpus):
    a = chunk_document(corpus)
    b = chunk_document(corpus)
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == len(a)
