"""An interview's layout, whatever the format: bylines, credits, dates, sources and speaker turns.

Every reader (text, Markdown, Word, PDF, web page, scan) hands lines to ``ingest.parse``,
which asks this module what each line is: part of the header (the "——访……" byline, "本报记者
李明", "受访人：……", "2024年5月12日", "来源：……") or a turn of the conversation (记者/问/Q/主持人
asking; the interviewee's name, 答 or A answering), and where a turn's words begin, past any
Markdown emphasis, timestamp and label ("**答：**", "[00:00:41] 赵刚：").  Written by hand: these
are conventions of Chinese newspaper and broadcast interviews that no library models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ASKER_LABELS = frozenset(
    {"记者", "本报记者", "问", "提问", "主持人", "主持", "编者", "采访者", "q", "interviewer", "host", "reporter"}
)
ANSWER_LABELS = frozenset({"答", "a", "受访者", "受访人", "answer"})
# Labelled header lines: what the label says the value is.
_HEADER_LABELS = {
    "受访人": "interviewee",
    "受访者": "interviewee",
    "受访嘉宾": "interviewee",
    "嘉宾": "interviewee",
    "采访对象": "interviewee",
    "访谈对象": "interviewee",
    "interviewee": "interviewee",
    "guest": "interviewee",
    "guests": "interviewee",
    "主持人": "host",
    "主持": "host",
    "host": "host",
    "记者": "reporter",
    "采访": "reporter",
    "采写": "reporter",
    "撰稿": "reporter",
    "作者": "reporter",
    "文": "reporter",
    "interviewer": "reporter",
    "reporter": "reporter",
    "by": "reporter",
    "编辑": "other",
    "责任编辑": "other",
    "图": "other",
    "摄影": "other",
    "来源": "publisher",
    "出处": "publisher",
    "刊发": "publisher",
    "source": "publisher",
    "时间": "date",
    "日期": "date",
    "发布时间": "date",
    "播出时间": "date",
    "date": "date",
}
_LABELLED = re.compile(r"^([（(【\[]?)\s*([A-Za-z\u4e00-\u9fff]{1,12})\s*[：:]\s*(.{1,80}?)\s*$")
# "——访……" ("一访" is how OCR reads the dash of a scanned byline)
_BYLINE = re.compile(r"^[—\-─–－一]{1,4}\s*(?:访|专访|对话|记)\s*(.{2,60}?)\s*$")
# A byline whose dash a scan lost ("访青山市统计局局长曹雅琴"): only with a title and a name after it.
_BARE_BYLINE = re.compile(
    r"^(?:访|专访)(?!谈|问)(.{2,40}?(?:长|书记|主任|委员|主席|经理|董事长|院士|教授|专家|负责人)[\u4e00-\u9fff·]{2,4})$"
)
_CREDIT = re.compile(
    r"^[（(]?\s*(?:(?P<paper>[^\s，,。：:]{2,12}?)|本报|本台|本刊)?\s*(?:特约|见习)?(?:记者|通讯员|实习生)"
    r"(?:[\s　]+[^\s，,。：:]{2,4})+(?:[\s　]+(?:通讯员|实习生|摄影)(?:[\s　]+[^\s，,。：:]{2,4})+)*\s*[）)]?$"
)
_ROLES = frozenset({"记者", "通讯员", "实习生", "摄影", "特约记者", "见习记者"})
DATE = re.compile(r"(\d{4})\s*(?:年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日|[-/.](\d{1,2})[-/.](\d{1,2}))")
_SOURCE = re.compile(r"《([^》]{2,20})》")
_PAPER = re.compile(r"(日报|晚报|时报|周报|报|电视台|广播电台|电台|网|杂志|新闻|Daily|Times|News)$")
# What may stand before a turn's words: Markdown quote, list and emphasis marks, a timestamp.
_MARKUP = re.compile(r"^(?:[>*_#\s　]|[-•·](?=\s))*")
_TIMESTAMP = re.compile(r"^[\[【(（]?\s*\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?\s*[\]】)）]?\s*")
_LABEL = re.compile(
    r"^(?P<name>[A-Za-z\u4e00-\u9fff·]{1,10}(?:[ 　][A-Za-z\u4e00-\u9fff·]{1,10})?)"
    r"(?:\s*[（(][^（()）]{1,30}[）)])?\s*(?:\*\*|__)?\s*[：:](?:\s*(?:\*\*|__))?\s*"
)
# A numbered point or a sentence is not a name: "一是扩充水源：", "第一：", "2023年："
_NOT_NAME = re.compile(r"^(?:[一二三四五六七八九十]+是|首先|其次|再次|最后|第|总之|例如|比如|其中|包括|注)|\d")
_NAME_AFTER_TITLE = re.compile(
    r"(?:长|书记|主任|委员|主席|经理|董事长|总裁|院士|教授|研究员|专家|代表|总监|负责人|主管|干部|所长|校长|院长)"
    r"([\u4e00-\u9fff·]{2,4})$"
)


@dataclass(frozen=True)
class HeaderLine:
    """A line that says who, when or where rather than what: its kind and the values it gives."""

    kind: str  # "interviewee", "host", "reporter", "date", "publisher", "other"
    values: tuple[str, ...] = ()
    date: str = ""
    publisher: str = ""
    byline: bool = False  # "——访……": it opens an interview


@dataclass(frozen=True)
class Turn:
    """Where a line's words begin, and the label before them ("" when there is none)."""

    skip: int  # past markup, timestamp and label
    bare: int  # past markup and timestamp only (where the words begin when the label is no speaker's)
    label: str = ""
    emphasized: bool = False  # the whole line in Markdown bold ("**……？**"): a question, when it asks


@dataclass
class Cast:
    """Who takes part in one interview, as its header and its turns tell."""

    interviewees: list[str] = field(default_factory=list)  # as written: "青山市工信局局长王建国", "张丽华（……主任）"
    askers: set[str] = field(default_factory=set)  # the reporters' and hosts' names
    speakers: list[str] = field(default_factory=list)  # names that answered a question, in order
    date: str = ""
    publisher: str = ""

    def take(self, line: HeaderLine) -> None:
        if line.kind == "interviewee":
            self.interviewees += [v for v in line.values if v not in self.interviewees]
        elif line.kind in ("host", "reporter"):
            self.askers.update(short_name(v) or v for v in line.values)
        self.date = self.date or line.date
        self.publisher = self.publisher or line.publisher

    def asks(self, label: str) -> bool:
        low = label.lower()
        return low in ASKER_LABELS or label in self.askers or low.startswith(("记者", "本报记者", "主持人"))

    def names(self) -> list[str]:
        """The short names of the interviewees ("王建国"), where their lines give one."""
        return [n for n in (short_name(v) for v in self.interviewees) if n]

    def speaker_for(self, label: str) -> str:
        """The person a label stands for: "答" is the only interviewee, a name is itself."""
        if label.lower() in ANSWER_LABELS:
            names = self.names() or list(dict.fromkeys(self.speakers))
            return names[0] if len(names) == 1 else ""
        return label

    def is_speaker(self, label: str, after_question: bool) -> bool:
        """Whether a label opens an answer: a known person, 答/A, or any name answering a question."""
        if label.lower() in ANSWER_LABELS or label in self.speakers:
            return True
        if any(label in v for v in self.interviewees):
            return True
        return after_question and is_name(label)


def is_name(label: str) -> bool:
    return 1 <= len(label.replace(" ", "")) <= 8 and not _NOT_NAME.match(label)


def short_name(description: str) -> str:
    """The person's name in a line that describes them: "张丽华（市生态环境局副局长）" -> 张丽华,
    "青山市工业和信息化局局长王建国" -> 王建国; '' when no name can be told apart."""
    text = description.strip()
    bracket = re.match(r"^([^（(]{1,12}?)\s*[（(]", text)
    if bracket:
        return bracket.group(1).strip()
    match = _NAME_AFTER_TITLE.search(text)
    if match:
        return match.group(1)
    latin = re.match(r"^([A-Z][a-z]+(?: [A-Z][a-z]+){0,2}),", text)  # "Sarah Chen, Director of ..."
    if latin:
        return latin.group(1)
    if re.fullmatch(r"[\u4e00-\u9fff·]{2,4}|[A-Z][a-z]+(?: [A-Z][a-z]+){0,2}", text):
        return text
    return ""


def people(value: str) -> tuple[str, ...]:
    """The people a header value lists ("赵刚（局长）、钱敏（主任）"), split outside brackets."""
    parts, depth, current = [], 0, ""
    for ch in value:
        depth += ch in "（(" and 1 or 0
        depth -= ch in "）)" and 1 or 0
        if depth == 0 and ch in "、，；;/":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return tuple(p.strip(" 　") for p in parts if p.strip(" 　"))


def header_line(line: str) -> HeaderLine | None:
    """What a header line gives, or None for a line of the interview itself."""
    text = _MARKUP.sub("", line).strip().strip("*_").strip()
    if not text or len(text) > 90:
        return None
    byline = _BYLINE.match(text) or _BARE_BYLINE.match(text)
    if byline:
        return HeaderLine("interviewee", people(byline.group(1).rstrip("）)")), byline=True)
    labelled = _LABELLED.match(text)
    if labelled and labelled.group(2).lower() in _HEADER_LABELS:
        kind, value = _HEADER_LABELS[labelled.group(2).lower()], labelled.group(3).strip("*_ 　")
        if labelled.group(1):  # "（来源：青山日报）": the bracket opened before the label closes the line
            value = value.rstrip("）)】]")
        if kind in ("host", "reporter") and (re.search(r"[。？！?!，,]", value) or len(value) > 24):
            return None  # "记者：请您谈谈……？" is a question, not a credit
        if kind == "interviewee" and re.search(r"[。？！?!]", value):
            return None
        return HeaderLine(
            kind, people(value), date_in(value), _publisher(value) if kind in ("publisher", "date") else ""
        )
    credit = _CREDIT.match(text)
    if credit:
        names = tuple(n for n in re.findall(r"[\s　]+([^\s，,。：:（）()]{2,4})", text) if n not in _ROLES)
        paper = credit.group("paper") or ""
        own = paper.startswith(("本报", "本台", "本刊", "本网"))  # "本报记者": the paper is not named
        return HeaderLine("reporter", names, "", paper if _PAPER.search(paper) and not own else "")
    date = date_in(text)
    if date and len(text) <= 40 and not re.search(r"[。？！?!]", text):
        return HeaderLine("date", (), date, _publisher(text))
    if _SOURCE.fullmatch(text.strip("（）() ")) or re.match(r"^[（(]?(?:原载|刊于|转自)", text):
        return HeaderLine("publisher", (), "", _publisher(text))
    return None


def date_in(text: str) -> str:
    """The first date ``text`` states, as "2024年5月12日"; '' when none."""
    match = DATE.search(text)
    if not match:
        return ""
    year, month, day = match.group(1), match.group(2) or match.group(4), match.group(3) or match.group(5)
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return ""
    return f"{year}年{int(month)}月{int(day)}日"


def _publisher(text: str) -> str:
    named = _SOURCE.search(text)
    if named:
        return named.group(1)
    plain = re.sub(r"^[（(]?(?:来源|出处|原载|刊于|转自|source)\s*[：:]?\s*", "", text, flags=re.I)
    plain = DATE.sub("", plain).strip(" 　）)")
    plain = re.split(r"[\s　,，]", plain)[0] if plain else ""
    return plain if 2 <= len(plain) <= 20 and not date_in(plain) else ""


def turn(line: str) -> Turn:
    """Where the words of a line begin, and the label-like prefix it has ("记者", "王建国", "答", "Q");
    whether that label is a speaker's, ``Cast`` decides."""
    markup = _MARKUP.match(line).end()
    stamp = _TIMESTAMP.match(line[markup:])
    at = markup + (stamp.end() if stamp else 0)
    at += _MARKUP.match(line[at:]).end()
    label = _LABEL.match(line[at:])
    rest = line.strip()
    emphasized = len(rest) > 4 and rest.startswith(("**", "__")) and rest.endswith(("**", "__"))
    if label:
        return Turn(at + label.end(), at, label.group("name").strip(), emphasized)
    return Turn(at, at, "", emphasized)
