"""Interviews in the layouts people keep: news bylines, Q&A uploads, Markdown, transcripts, Word,
web pages, PDFs and scans (tests/data/formats.json says what each holds)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest.chunk import chunk_document
from ingest.parse import parse_file
from tests.formats import MANIFEST, build, character_accuracy

# What a quote must never start with: a speaker label, a timestamp, Markdown markup.
LABELLED = re.compile(
    r"^(?:[\[【(（]?\d{1,2}:\d{2}|[*_#>]|(?:记者|问|答|Q|A|主持人|[\u4e00-\u9fff]{2,4}|[A-Z][a-z]+ [A-Z][a-z]+)\s*[:：])"
)
ENTRIES = MANIFEST["files"]


def _same_title(read: str, expected: str, scanned: bool) -> bool:
    # OCR does not keep the space between a headline's two halves
    return "".join(read.split()) == "".join(expected.split()) if scanned else read == expected


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("formats"))


@pytest.fixture(scope="module")
def parsed(corpus):
    return {entry["file"]: parse_file(corpus / entry["file"]) for entry in ENTRIES}


def test_the_corpus_has_every_layout():
    suffixes = {Path(e["file"]).suffix for e in ENTRIES}
    assert len(ENTRIES) >= 20 and {".txt", ".md", ".docx", ".pdf", ".html", ".htm", ".png"} <= suffixes
    assert sum(len(a["questions"]) for e in ENTRIES for a in e["articles"]) >= 40


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_title_interviewee_date_and_publisher(entry, parsed):
    doc = parsed[entry["file"]]
    assert len(doc.articles) == len(entry["articles"])
    for article, expected in zip(doc.articles, entry["articles"]):
        assert _same_title(article.title, expected["title"], entry.get("build") == "scan"), article.title
        for name in expected["interviewees"]:
            assert name in article.interviewee
        assert article.date == expected.get("date", "")
        assert article.publisher == expected.get("publisher", "")


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_no_paragraph_or_sentence_starts_with_a_label(entry, parsed):
    doc = parsed[entry["file"]]
    for article, expected in zip(doc.articles, entry["articles"]):
        for p in article.paragraphs:
            assert not LABELLED.match(doc.text[p.start : p.end]), doc.text[p.start : p.end]
            if p.role == "answer":  # said by the interviewee, and the right one in a round-table
                assert any(name in p.speaker for name in expected["interviewees"]), p.speaker
        questions = [p for p in article.paragraphs if p.role == "question"]
        assert len(questions) >= 2  # the reporter's or host's questions are told apart, as context
    for chunk in chunk_document(doc):
        for start, end in chunk.sentences():
            assert not LABELLED.match(doc.text[start:end]), doc.text[start:end]


def test_a_round_table_answer_is_its_own_speakers(parsed):
    doc = parsed["06_round_table.txt"]
    speakers = {p.speaker for p in doc.articles[0].paragraphs if p.role == "answer"}
    assert speakers == {"青山市农业农村局局长钱国强", "青山市乡村振兴局副局长林晓燕"}


def test_ocr_reads_rendered_scans_accurately(parsed):
    for entry in (e for e in ENTRIES if e.get("build") == "scan"):
        doc = parsed[entry["file"]]
        accuracy = character_accuracy("".join(entry["lines"]), doc.text)
        assert accuracy >= 0.98, (entry["file"], accuracy)
        pages = {r.page for r in doc.regions}
        assert pages == set(range(1, entry.get("pages", 1) + 1))
        # every line's region holds the text it was read as, and a paragraph knows its page
        assert all(doc.text[r.start : r.end].strip() for r in doc.regions)
        assert all(p.page in pages for a in doc.articles for p in a.paragraphs)


def test_a_scanned_line_is_cut_from_its_page(corpus, parsed):
    from ingest.scans import line_image

    doc = parsed["21_scan.pdf"]
    region = next(r for r in doc.regions if "18.7万个" in doc.text[r.start : r.end])
    assert region.page == 2
    image = line_image(corpus / "21_scan.pdf", region)
    width, height = image.size
    assert width >= region.box[2] - region.box[0] and height < 4 * (region.box[3] - region.box[1])
    assert line_image(corpus / "gone.pdf", region) is None


@pytest.fixture(scope="module")
def answered(corpus, tmp_path_factory, model_cache):
    """The whole layouts corpus, with an unsupported and a broken file beside it, ingested with the
    real model and Chroma; then every question asked."""
    from ingest.pipeline import ingest
    from rag.assistant import Assistant
    from rag.config import Settings

    (corpus / "notes.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    (corpus / "broken.docx").write_bytes(b"PK\x03\x04garbage")
    settings = Settings(home=tmp_path_factory.mktemp("formats-home"), model_cache=model_cache)
    report = ingest([corpus], settings)
    assistant = Assistant(settings)
    answers = {
        q["q"]: assistant.ask(q["q"])
        for entry in ENTRIES
        for article in entry["articles"]
        for q in article["questions"]
    }
    return report, assistant, answers


@pytest.mark.slow
def test_the_run_report_lists_every_file_given(corpus, answered):
    report, _, _ = answered
    given = {p.name for p in corpus.iterdir()}
    assert {Path(f.path).name for f in report.files} == given
    status = {Path(f.path).name: (f.status, f.reason) for f in report.files}
    assert status["notes.xlsx"] == ("skipped", "unsupported type .xlsx")
    assert status["broken.docx"][0] == "failed" and "broken.docx" in status["broken.docx"][1]
    assert all(status[e["file"]][0] == "indexed" for e in ENTRIES)


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_every_question_is_answered_with_its_figure_by_the_right_person(entry, answered):
    _, _, answers = answered
    for article in entry["articles"]:
        others = [n for e in ENTRIES for a in e["articles"] for n in a["interviewees"] if n != "" and a is not article]
        for q in article["questions"]:
            answer = answers[q["q"]]
            assert answer.found, q["q"]
            assert q["figure"] in answer.text, (q["q"], answer.text)
            holding = [c for c in answer.citations if q["figure"] in c.quote]
            assert holding, (q["q"], answer.citations)
            for c in holding:
                assert _same_title(c.title, article["title"], entry.get("build") == "scan")
                assert q["speaker"] in (c.speaker or c.interviewee)
                assert not any(n in c.speaker for n in others if n not in q["speaker"])
                assert not LABELLED.match(c.quote), c.quote
                if entry.get("build") == "scan":
                    assert c.page >= 1


@pytest.mark.slow
def test_interviewees_of_every_layout_can_be_chosen(answered):
    _, assistant, _ = answered
    _, people = assistant.retriever.known()
    for entry in ENTRIES:
        for article in entry["articles"]:
            for name in article["interviewees"]:
                assert any(name in p for p in people), name
    answer = assistant.ask("新增就业多少人？", interviewees=["杜鹏"])
    assert answer.found and "4.2万人" in answer.text
    assert all("杜鹏" in c.interviewee for c in answer.citations)


def test_an_upload_shows_its_people_and_paper_in_the_table_the_filter_and_the_api(settings, fake_embedder, corpus):
    """A file uploaded through the page, whose second line is the byline."""
    import shutil
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from tests.conftest import FakeAssistant
    from ui.api import create_api
    from ui.app import ChatPage
    from ui.collection import Collection, document_rows

    upload = settings.home.parent / "gradio-copy"
    shutil.copy(corpus / "09_two_char_name.txt", upload)
    collection = Collection(settings, fake_embedder)
    assert "已索引 1 个文件" in collection.add([(upload, "09_two_char_name.txt")])
    rows, _ = document_rows(collection)
    assert rows[0][:3] == ["守好群众“钱袋子”", "青山市医疗保障局局长王芳", "青山晚报 2024年6月18日"]
    choices = ChatPage(SimpleNamespace(settings=settings), collection).scopes()["choices"]
    assert [person for _, person in choices] == ["青山市医疗保障局局长王芳"]
    http = TestClient(create_api(FakeAssistant(settings), collection, loopback=True))
    (listed,) = http.get("/v1/documents").json()["documents"]
    assert listed["articles"] == [
        {
            "title": "守好群众“钱袋子”",
            "interviewee": "青山市医疗保障局局长王芳",
            "date": "2024年6月18日",
            "publisher": "青山晚报",
        }
    ]


def test_a_scan_is_read_page_by_page_and_its_card_shows_the_scanned_line(settings, fake_embedder, corpus):
    from ingest.pipeline import ingest
    from rag.store import DocumentStore
    from rag.types import Answer, Hit, cite
    from ui.render import sources_html

    seen = []
    report = ingest([corpus / "21_scan.pdf"], settings, embedder=fake_embedder, on_progress=lambda *a: seen.append(a))
    assert report.count("indexed") == 1
    assert [(done, total) for done, total, label in seen if label.endswith("OCR")] == [(1, 2), (2, 2)]
    documents = DocumentStore(settings)
    (doc_hash,) = documents.hashes()
    doc = documents.load(doc_hash)
    assert doc.regions  # stored with the document
    chunk = next(c for c in chunk_document(doc) if "18.7万个" in c.text)
    start = doc.text.index("全市共清查")
    citation = cite(1, Hit(chunk, 1.0), start, doc.text.index("。", start) + 1, 0.9)
    assert citation.page == 2 and "曹雅琴" in citation.speaker
    panel = sources_html(Answer("q", "x[1]", True, [citation]), documents)
    assert "第2页" in panel and 'src="data:image/png;base64,' in panel
