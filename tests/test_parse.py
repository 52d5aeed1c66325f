"""Reading files and splitting the bundled collection into articles."""

from __future__ import annotations

import zipfile

import pytest

from ingest.parse import decode_text, find_interviewee, parse_file, split_articles
from rag.errors import ParseError
from tests.conftest import CORPUS

TITLES = [
    "以改革创新精神推进先导区全面高质量发展",
    "做发展的实干家改革的攻坚者",
    "坚定改革信心奋力拼抢赶超加快建设高质量基础教育发展体系",
    "改革创新出实招服务企业促发展",
    "勇立改革潮头奏响发展强音",
]


@pytest.fixture(scope="module")
def corpus():
    return parse_file(CORPUS)


def test_bundled_collection_has_five_articles_with_their_titles(corpus):
    assert [a.title for a in corpus.articles] == TITLES
    assert corpus.title == "领导干部访谈材料汇编（5篇）"


def test_interviewees_are_named(corpus):
    assert [a.interviewee for a in corpus.articles] == [
        "开发区党工委副书记、管委会主任xx",
        "省发展和改革委员会党组书记、主任xx",
        "市教育局党组书记、局长于晓峰",
        "市住建局局长xxx",
        "xx县委书记、深改委主任xxx",
    ]


def test_question_and_answer_turns(corpus):
    for index, questions in ((2, 3), (5, 3)):
        paragraphs = corpus.articles[index - 1].paragraphs
        roles = [p.role for p in paragraphs]
        assert roles.count("question") == questions
        for i, p in enumerate(paragraphs):
            if p.role == "question":
                # the label stands before the paragraph, never in it
                line_start = corpus.text.rfind("\n", 0, p.start) + 1
                assert corpus.text[line_start : p.start].rstrip().startswith("记者")
                assert paragraphs[i + 1].role == "answer"
                # the answer is the interviewee's, named as the article names them
                assert paragraphs[i + 1].speaker == corpus.articles[index - 1].interviewee
                answer = paragraphs[i + 1]
                assert not corpus.text[answer.start : answer.end].startswith(("xx：", "xxx：", "xx:"))
    # the ASCII-colon question is recognised too
    assert any(
        corpus.text[corpus.text.rfind("\n", 0, p.start) + 1 : p.start].startswith("记者:")
        for p in corpus.articles[4].paragraphs
    )
    # the narrative articles have no turns
    assert {p.role for p in corpus.articles[2].paragraphs} == {"text"}


def test_paywall_markers_never_in_a_paragraph(corpus):
    for article in corpus.articles:
        for p in article.paragraphs:
            assert "##paid" not in corpus.text[p.start : p.end]
            assert corpus.text[p.start : p.end].strip() == corpus.text[p.start : p.end]


def test_encodings(tmp_path):
    text = "记者：营商环境如何？\n局长：我们取消了纸质材料。"
    (tmp_path / "gbk.txt").write_bytes(text.encode("gbk"))
    (tmp_path / "bom.txt").write_bytes(text.encode("utf-8-sig"))
    (tmp_path / "gb18030.md").write_bytes(("# 标题\n" + text).encode("gb18030"))
    for name in ("gbk.txt", "bom.txt"):
        doc = parse_file(tmp_path / name)
        assert doc.text == text, name
    md = parse_file(tmp_path / "gb18030.md")
    assert md.articles[0].title == "标题"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.txt", b"  \n\n ", "empty"),
        ("binary.txt", bytes(range(256)) * 20, "binary"),
        ("broken.docx", b"PK\x03\x04 this is not a zip", "docx"),
        ("only-markers.txt", "##paidbegin##\n##paidend##".encode(), "no text"),
        ("notes.rtf", b"{\\rtf1}", "unsupported"),
    ],
)
def test_bad_files_get_one_line_reasons(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ParseError) as info:
        parse_file(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert name in str(info.value)


def test_docx_headings_and_paragraphs(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("优化营商环境访谈", level=1)
    document.add_paragraph("“营商环境是生产力。”日前，市住建局局长xxx在接受记者采访时说。")
    document.add_paragraph("记者：审批时间缩短了多少？")
    document.add_paragraph("xxx：审批时限压缩到x个工作日以内。")
    path = tmp_path / "interview.docx"
    document.save(path)
    doc = parse_file(path)
    assert [a.title for a in doc.articles] == ["优化营商环境访谈"]
    article = doc.articles[0]
    assert article.interviewee == "市住建局局长xxx"
    assert [p.role for p in article.paragraphs] == ["text", "question", "answer"]


def test_docx_zip_without_document_is_refused(tmp_path):
    path = tmp_path / "empty.docx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ParseError, match="docx"):
        parse_file(path)


def test_pdf_with_text_and_without(tmp_path):
    from reportlab.pdfgen import canvas

    with_text = tmp_path / "memo.pdf"
    c = canvas.Canvas(str(with_text))
    c.drawString(72, 720, "Interview with the director.")
    c.drawString(72, 700, "We cut approval time to five working days.")
    c.save()
    doc = parse_file(with_text)
    assert "five working days" in doc.text

    scanned = tmp_path / "scan.pdf"
    c = canvas.Canvas(str(scanned))
    c.rect(100, 100, 200, 200, fill=1)
    c.save()
    with pytest.raises(ParseError, match="no text layer"):
        parse_file(scanned)


def test_undecodable_bytes_are_refused_not_guessed():
    with pytest.raises(ParseError, match="encoding"):
        decode_text(bytes([0x81, 0x30, 0xFF, 0xFE, 0x80]) * 50, "odd.txt")


def test_single_article_without_title_is_named_after_the_file():
    doc = split_articles("我们坚持改革创新。今年审批提速x.x%。", "/x/住建访谈.txt")
    assert [a.title for a in doc.articles] == ["住建访谈"]


def test_find_interviewee_patterns():
    assert (
        find_interviewee("近日，本报记者专访了省发展和改革委员会党组书记、主任xx。")
        == "省发展和改革委员会党组书记、主任xx"
    )
    assert find_interviewee("日前，市委改革办对xx县委书记xxx进行了专题访谈。") == "xx县委书记xxx"
    assert find_interviewee("今年以来成效明显。") == ""


def test_docx_zip_bomb_is_refused_before_unpacking(tmp_path):
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"0" * (4 * 2**20))  # 4 MB of zeros pack into a few KB
    assert path.stat().st_size < 100_000
    with pytest.raises(ParseError, match="zip bomb"):
        parse_file(path, max_unpacked=2**20)
