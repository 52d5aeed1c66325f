"""The layout rules every reader shares: header lines, speaker turns, names."""

from __future__ import annotations

import pytest

from ingest.layout import Cast, date_in, header_line, people, short_name, turn
from ingest.parse import split_articles


@pytest.mark.parametrize(
    ("line", "kind", "values", "date", "publisher"),
    [
        ("——访青山市工业和信息化局局长王建国", "interviewee", ("青山市工业和信息化局局长王建国",), "", ""),
        ("—— 专访市委书记李华", "interviewee", ("市委书记李华",), "", ""),
        ("访青山市统计局局长曹雅琴", "interviewee", ("青山市统计局局长曹雅琴",), "", ""),
        ("受访人：张丽华（青山市生态环境局副局长）", "interviewee", ("张丽华（青山市生态环境局副局长）",), "", ""),
        ("嘉宾：赵刚（局长）、钱敏（主任）", "interviewee", ("赵刚（局长）", "钱敏（主任）"), "", ""),
        ("Interviewee: Sarah Chen, Director of the Port", "interviewee", ("Sarah Chen, Director of the Port",), "", ""),
        ("主持人：刘洋", "host", ("刘洋",), "", ""),
        ("本报记者 李明 通讯员 王芳", "reporter", ("李明", "王芳"), "", ""),
        ("青山晚报记者 陈晨", "reporter", ("陈晨",), "", "青山晚报"),
        ("2024年5月12日", "date", (), "2024年5月12日", ""),
        ("来源：青山晚报 2024年6月18日", "publisher", ("青山晚报 2024年6月18日",), "2024年6月18日", "青山晚报"),
        ("《青山日报》2024年4月2日 第3版", "date", (), "2024年4月2日", "青山日报"),
        ("（来源：青山日报）", "publisher", ("青山日报",), "", "青山日报"),
        ("Date: 2024-07-15", "date", ("2024-07-15",), "2024年7月15日", ""),
    ],
)
def test_header_lines(line, kind, values, date, publisher):
    found = header_line(line)
    assert found is not None and found.kind == kind
    assert found.values == values and found.date == date and found.publisher == publisher


@pytest.mark.parametrize(
    "line",
    [
        "记者：请您谈谈今年的工作？",  # a question, not a credit
        "主持人：欢迎收听本期节目。",
        "访谈中，他多次提到营商环境",
        "一是扩充水源：建成第二水源地。",
        "今年全市完成投资212亿元。",
        "守好群众“钱袋子”",
    ],
)
def test_lines_of_the_interview_are_not_header_lines(line):
    assert header_line(line) is None


@pytest.mark.parametrize(
    ("line", "label", "words"),
    [
        ("记者：今年怎么样？", "记者", "今年怎么样？"),
        ("王建国:一季度增长8.2%。", "王建国", "一季度增长8.2%。"),
        ("**问：** 去年空气质量怎么样？", "问", "去年空气质量怎么样？"),
        ("**王建国**：我们设立了基金。", "王建国", "我们设立了基金。"),
        ("[00:00:41] 赵刚：谢谢主持人。", "赵刚", "谢谢主持人。"),
        ("（00:35）何志勇：今年完成抽检。", "何志勇", "今年完成抽检。"),
        ("Q: How much cargo?", "Q", "How much cargo?"),
        ("欧阳明远（局长）：今年新建学校18所。", "欧阳明远", "今年新建学校18所。"),
        ("> 今年新建学校18所。", "", "今年新建学校18所。"),
    ],
)
def test_a_turn_starts_past_its_markup_timestamp_and_label(line, label, words):
    t = turn(line)
    assert t.label == label and line[t.skip :].strip() == words


def test_who_asks_and_who_answers():
    cast = Cast(interviewees=["青山市工业和信息化局局长王建国"], askers={"李明"})
    assert cast.asks("记者") and cast.asks("Q") and cast.asks("李明") and cast.asks("主持人")
    assert not cast.asks("王建国")
    assert cast.is_speaker("王建国", after_question=False)  # named in the byline: anywhere
    assert cast.is_speaker("答", after_question=False) and cast.speaker_for("答") == "王建国"
    assert not cast.is_speaker("一是扩充水源", after_question=True)  # a numbered point, not a name
    assert not cast.is_speaker("赵刚", after_question=False)  # an unknown name only answers a question


def test_names_and_dates():
    assert short_name("张丽华（市生态环境局副局长）") == "张丽华"
    assert short_name("青山市工业和信息化局局长王建国") == "王建国"
    assert short_name("Sarah Chen, Director of the Port") == "Sarah Chen"
    assert short_name("开发区党工委副书记、管委会主任xx") == ""
    assert people("赵刚（局长、党组书记）、钱敏") == ("赵刚（局长、党组书记）", "钱敏")
    assert date_in("2024-13-40") == "" and date_in("发布于2024/5/2 10:00") == "2024年5月2日"


def test_a_file_of_several_interviews_without_titles_is_split_at_each_byline():
    text = "——访市水务局局长陈立新\n记者：供水怎么样？\n陈立新：新增日供水15万吨。\n——访市林业局局长魏东升\n记者：造林多少？\n魏东升：完成8.6万亩。"
    doc = split_articles(text, "/x/两篇.txt")
    assert [a.interviewee for a in doc.articles] == ["市水务局局长陈立新", "市林业局局长魏东升"]
    assert [p.speaker for a in doc.articles for p in a.paragraphs if p.role == "answer"] == [
        "市水务局局长陈立新",
        "市林业局局长魏东升",
    ]


def test_markdown_sections_stay_inside_their_article():
    text = "# 标题\n\n受访人：郑宇\n\n## 一、平台\n\n问：平台怎么样？\n\n答：新建实验室6个。\n\n## 二、人才\n\n问：人才呢？\n\n答：引进博士120名。"
    headings = {0: 1, 4: 2, 10: 2}
    doc = split_articles(text, "/x/a.md", headings)
    assert len(doc.articles) == 1 and doc.articles[0].title == "标题"
    roles = [p.role for p in doc.articles[0].paragraphs]
    assert roles == ["text", "question", "answer", "text", "question", "answer"]


def test_labels_with_nothing_said_are_no_article():
    from rag.errors import ParseError

    with pytest.raises(ParseError, match="no text to index"):
        split_articles("标题\n记者：\n王建国：", "/x/a.txt")
    doc = split_articles("标题\n记者：\n王建国：\n另一篇\n记者：问？\n王建国：答。", "/x/a.txt")
    assert [a.title for a in doc.articles] == ["另一篇"]
