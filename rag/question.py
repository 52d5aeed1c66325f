"""A question, read once: cleaned text, language, follow-up context and what it asks for.

Everything below the assistant takes a ``Question``; nothing re-parses the raw string.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from rag.text import has_cjk, has_words, without_markup

MAX_QUESTION_CHARS = 500

History = Sequence[tuple[str, str]]

_ANAPHORA = re.compile(
    r"他|她|它|其|该|此|这|那|上述|前者|后者|\b(?:he|she|it|they|his|her|its|their|this|that|these|those)\b", re.I
)
# A follow-up this short ("还有呢？", "具体呢？") has too few words of its own to be read alone.
SHORT_FOLLOW_UP_CHARS = 8

# Common characters written differently in the two scripts, enough to tell which a question uses.
_TRADITIONAL_ONLY = re.compile(r"[這們個說為麼國會來時對與發問題學關經過還進裡誰幾點產業區縣長後開資沒]")
_SIMPLIFIED_ONLY = re.compile(r"[这们个说为么国会来时对与发问题学关经过还进谁点产业区县长开资没]")

LIST_QUESTION = re.compile(
    r"哪些|哪几|有什么|有哪|包括|几个方面|几方面|哪[一二三四五六七八九十两几]|列举|\bwhich\b|\bwhat are\b|\blist\b",
    re.I,
)
ACROSS_QUESTION = re.compile(
    r"哪几位|哪些受访者|哪些领导|哪几篇|哪些文章|哪些访谈|谁谈到|谁提到|都谈到|都提到|分别|各自|\bwho\b|\bwhich interviews\b",
    re.I,
)

_NUMBER = r"[0-9０-９xX一二三四五六七八九十百千万亿两几多余.%％]"
# A date or a time span: a number before 年/月/日/号, or words that place a time (年底, 以来…).
TIME = (
    r"[0-9０-９xX一二三四五六七八九十〇零两]+\s*(?:年|月|日|号|季度)|年底|年初|年内|年末|月底|月初|月中|上半年|下半年"
    r"|以来|期间|今年|去年|明年|前夕|当天"
)
# (what the question asks for, what a sentence answering it must contain)
ANSWER_TYPES = (
    (
        re.compile(r"(?<!哪)(?:多少|几)([个项条套名家所座次件栋间户台辆位元亿吨亩批类种])"),
        lambda m: _NUMBER + r"+\s*" + m.group(1),
    ),
    (re.compile(r"哪所(?:大学|学校|院校)|什么(?:大学|学校)|毕业"), lambda m: r"大学|学院|学校|毕业"),
    (re.compile(r"什么时候|何时|哪一?年|哪一?天|哪个?月|几月|什么时间|什么日子|日期"), lambda m: TIME),
    # A year is a calendar year (2021年, xxxx年), not a span ("用x年左右时间").
    (
        re.compile(r"哪一?年(?!级)|\b(?:what|which) year\b", re.I),
        lambda m: r"(?:\d{4}|[xX]{4}|[〇零一二三四五六七八九]{4})\s*年",
    ),
    (re.compile(r"多少钱|多少资金|投资多少|金额"), lambda m: r"元"),
    (re.compile(r"百分之|增长率|比例|占比|增幅"), lambda m: r"%|％|百分|成"),
    # The same kinds asked in English of a Chinese collection.
    (
        re.compile(r"\b(?:population|how many (?:people|residents|inhabitants))\b", re.I),
        lambda m: r"人口|万人|[0-9x]+\s*人",
    ),
    (re.compile(r"\b(?:which|what) (?:university|college|school)\b|\bgraduat", re.I), lambda m: r"大学|学院|学校|毕业"),
    (re.compile(r"\bwhen\b|\b(?:what|which) (?:year|month|day|date)\b", re.I), lambda m: TIME),
    (re.compile(r"\bhow much (?:money|funding|investment)\b|\bhow much did\b.*\binvest", re.I), lambda m: r"元"),
    (re.compile(r"\bpercent|\bpercentage\b|\bgrowth rate\b", re.I), lambda m: r"%|％|百分|成"),
)


def clean(raw) -> str:
    """The question without control characters and with runs of white space made one space."""
    text = "" if raw is None else str(raw)
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C" or c in "\n\t")
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Question:
    """A question as the assistant reads it; ``refusal`` is set when there is nothing to ask."""

    text: str
    notice: str = ""
    refusal: str = ""
    history: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @classmethod
    def parse(cls, raw, history: History | None = None) -> Question:
        """Clean ``raw``, cut it to ``MAX_QUESTION_CHARS``, and say why when it cannot be asked."""
        text = clean(raw)
        turns = tuple((str(q), str(a)) for q, a in (history or ()))
        if not text:
            return cls(text, refusal="请输入一个问题。Please type a question.", history=turns)
        if not has_words(without_markup(text)):  # "<script>alert(1)</script>" is code, not words
            reply = cls(text).reply(
                "这不像一个问题：请用文字提问，例如“市住建局取消了哪些纸质材料？”",
                "That does not look like a question: please ask in words.",
            )
            return cls(text, refusal=reply, history=turns)
        notice = ""
        if len(text) > MAX_QUESTION_CHARS:
            text = text[:MAX_QUESTION_CHARS]
            notice = cls(text).reply(
                f"问题过长，只使用了前 {MAX_QUESTION_CHARS} 个字。",
                f"The question was too long; only its first {MAX_QUESTION_CHARS} characters were used.",
            )
        return cls(text, notice=notice, history=turns)

    # -- language ---------------------------------------------------------------------------

    @cached_property
    def cjk(self) -> bool:
        """Whether the question holds Chinese characters (it then shares words with the collection)."""
        return has_cjk(self.text)

    @cached_property
    def language(self) -> str:
        """``"zh"`` or ``"en"``: the language replies are given in."""
        return "zh" if self.cjk or not re.search(r"[A-Za-z]", self.text) else "en"

    def reply(self, zh: str, en: str) -> str:
        """``zh`` or ``en``, in the question's language."""
        return zh if self.language == "zh" else en

    @property
    def not_found(self) -> str:
        """The plain statement that the collection holds no answer (in traditional characters when asked so)."""
        zh = "資料中沒有找到這個問題的答案。" if self.traditional else "资料中没有找到这个问题的答案。"
        return self.reply(zh, "The collection does not contain an answer to this question.")

    @cached_property
    def traditional(self) -> bool:
        """Whether the question is written in traditional characters (and none only simplified)."""
        return bool(_TRADITIONAL_ONLY.search(self.text)) and not _SIMPLIFIED_ONLY.search(self.text)

    # -- follow-ups -------------------------------------------------------------------------

    @cached_property
    def follow_up(self) -> bool:
        """Whether the question leans on the previous turn (a pronoun, or too short to stand alone)."""
        if not self.history or self.refusal:
            return False
        return bool(_ANAPHORA.search(self.text)) or len(self.text) <= SHORT_FOLLOW_UP_CHARS

    @property
    def previous(self) -> tuple[str, str]:
        """The previous (question, answer), or two empty strings."""
        return self.history[-1] if self.history else ("", "")

    @property
    def search_text(self) -> str:
        """What to retrieve with: a follow-up is read together with the previous question."""
        return f"{self.previous[0]} {self.text}" if self.follow_up else self.text

    def in_context(self) -> Question:
        """The follow-up joined with the previous question, read as a question of its own."""
        return Question(self.search_text)

    # -- what it asks for -------------------------------------------------------------------

    @cached_property
    def wants_list(self) -> bool:
        return bool(LIST_QUESTION.search(self.text))

    @cached_property
    def across_interviews(self) -> bool:
        """Whether the answer should come from several interviews ("哪几位受访者谈到…")."""
        return bool(ACROSS_QUESTION.search(self.text))

    @cached_property
    def answer_types(self) -> tuple[re.Pattern, ...]:
        """What a sentence must contain to answer the question (a count of "套", a date...)."""
        needs = []
        for asks, pattern in ANSWER_TYPES:
            match = asks.search(self.text)
            if match:
                needs.append(re.compile(pattern(match)))
        return tuple(needs)

    def type_found(self, sentence: str) -> bool:
        """False when the question asks for a kind of thing that ``sentence`` does not contain."""
        return all(need.search(sentence) for need in self.answer_types)
