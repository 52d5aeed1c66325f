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


# What a question asks for, read once (``Question.kind``): each kind has an answerer of its own
# (``rag.assistant.Assistant.answerer_for``).
FACTOID, OPEN, MORE, WHO, SUMMARY = "factoid", "open", "more", "who", "summary"
KINDS = (FACTOID, OPEN, MORE, WHO, SUMMARY)

# "还有呢？", "还有其他措施吗？", "别的呢", "再说说", "anything else?": more of the previous answer.
_MORE = re.compile(
    r"^(?:那|那么|好的?[，,]?)?(?:还有(?:呢|吗|没有|什么|哪些|其他|其它|别的|更多)?|别的|其他|其它|另外|再|继续|更多)"
    r"|^(?:what|anything|something|tell me|go on|and|any)\b.*\b(?:else|more|other|others|on)\b|^more\b|^continue\b",
    re.I,
)
# What is left of a "more" question once its own words are taken out must be nothing of substance.
_MORE_WORDS = re.compile(
    r"那么|那|好的|好|还有|没有|什么|哪些|其他|其它|别的|更多|另外|再|继续|说说|讲讲|谈谈|介绍|一下|"
    r"措施|举措|做法|内容|方面|情况|办法|吗|呢|吧|啊|的|了|"
    r"what|anything|something|else|more|other|others|tell|me|go|on|and|any|about|is|are|there|continue|please",
    re.I,
)
# "哪些受访者提到了…", "哪几篇访谈…", "…分别/各自…", "谁谈到了…": which interviews say something.
_WHO = re.compile(
    r"(?:哪些|哪几|哪个|哪位|哪篇|几位|几篇|谁)[^，,。？?]{0,6}?(?:受访者|受访人|领导|访谈|文章|采访|部门|单位|人|篇|位)"
    r"[^，,。？?]{0,6}?(?:提到|谈到|说到|讲到|谈及|提及|涉及|关注|强调|说过|讲过|谈过|提过|都)"
    r"|谁(?:提到|谈到|说到|讲到|谈及|提及|强调)|都(?:提到|谈到|说到|讲到)"
    r"|\bwhich (?:interviewees?|officials?|interviews?|articles?|people|leaders?)\b|\bwho (?:mentioned|talked|spoke|discussed|said)\b",
    re.I,
)
_EACH = re.compile(r"分别|各自|\beach\b", re.I)
# "主要讲了什么", "概括", "哪几个方面", "请介绍一下这几篇访谈": an article's main points.
_SUMMARY = re.compile(
    r"主要(?:讲|说|谈|内容|观点|意思)|讲了(?:什么|些什么|哪些|哪几)|说了(?:什么|些什么|哪些)|谈了(?:什么|些什么|哪些|哪几)"
    r"|概括|总结|概述|归纳|大意|要点|核心观点|哪几个方面|几个方面|"
    r"介绍(?:一下)?(?:这|该|那|每|各)?(?:几|些|一)?(?:篇|份)?(?:访谈|文章|采访|材料)"
    r"|\bsummar|\bmain points?\b|\bkey points?\b|\bwhat (?:is|was) (?:the|this|that) (?:interview|article)\b.*\babout\b",
    re.I,
)
# Several articles at once: "这几篇访谈", "各篇", "所有".
_EVERY_ARTICLE = re.compile(r"这几|这些|几篇|各篇|每篇|每一篇|所有|全部|各位|\b(?:these|all|each)\b", re.I)
# "怎么做的", "如何推进", "有哪些举措", "做了什么", "谈谈…": a broad question, answered with a passage.
_OPEN = re.compile(
    r"(?:怎么|怎样|如何|怎么样)(?!的|样的|[？?。]*$)(?![^，,。？?]{0,3}(?:多少|几))"
    r"|(?:哪些|什么|哪几项|几项)[^，,。？?“”]{0,8}?"
    r"(?:举措|措施|做法|办法|成效|成果|经验|亮点|改革|目标|打算|政策|思路|安排|部署|行动|创新|尝试|变化|考虑)"
    r"|做了(?:什么|哪些|些什么)|干了(?:什么|哪些)|(?:谈谈|说说|讲讲|聊聊|介绍)(?!一下(?:这|该|那|每|各))|看待|打算|怎么看"
    r"|^how (?:did|does|do|has|have|is|are|was|were|will|can|could|should)\b(?!.*\b(?:many|much)\b)"
    r"|\bwhat (?:has|have|did|does|do|will)\b.*\b(?:done|do|doing)\b|\bwhat (?:measures|steps|actions|reforms|policies)\b"
    r"|^(?:describe|explain|tell me about)\b",
    re.I,
)


# A follow-up that asks for a fact of its own ("他毕业于哪所大学？") keeps the factoid kind.
_ASKS_A_FACT = re.compile(
    r"什么|哪|几|多少|谁|是否|是不是|吗|\b(?:what|which|who|when|where|how many|how much)\b", re.I
)


# Traditional characters of the words above, read as their simplified forms (DRCD, users in
# Taiwan and Hong Kong): "還有呢", "怎麼做的", "哪些受訪者談到".
_SIMPLIFIED = str.maketrans(
    "麼說講還別談訪幾這問記採們為舉進實總結點並個種與關體場區縣開後會過來對時從當現經濟應該據報導樣嗎繼續覽議",
    "么说讲还别谈访几这问记采们为举进实总结点并个种与关体场区县开后会过来对时从当现经济应该据报导样吗继续览议",
)


def kind_of(text: str, has_history: bool = False) -> str:
    """What ``text`` asks for: one of ``KINDS`` (a "more" question only with a conversation before it)."""
    text = text.translate(_SIMPLIFIED)
    if _MORE.search(text) and not _MORE_WORDS.sub("", re.sub(r"[\s\W\d_]+", "", text)):
        return MORE
    if _SUMMARY.search(text):
        return SUMMARY
    # "分别/各自" with a how ("开发区和住建局分别是怎么……的？"): each one's answer; with a fact
    # ("……分别是谁？") a factoid
    if _WHO.search(text) or (_EACH.search(text) and _OPEN.search(text)):
        return WHO
    if _OPEN.search(text):
        return OPEN
    return FACTOID


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
    def kind(self) -> str:
        """``factoid``, ``open``, ``more``, ``who`` or ``summary`` (see ``kind_of``)."""
        if self.refusal:
            return FACTOID
        own = kind_of(self.text)
        if own == MORE and not self.history:
            return FACTOID  # nothing to say more of: answered (refused) as it stands
        if own == FACTOID and self.follow_up and not _ASKS_A_FACT.search(self.text):
            # "那监管方面呢？", "在他们那里呢？": the previous question's kind, about a new topic.
            earlier = kind_of(clean(self.previous[0]))
            return earlier if earlier in (OPEN, WHO) else own
        return own

    @cached_property
    def every_article(self) -> bool:
        """Whether a summary is asked of several articles at once ("请介绍一下这几篇访谈")."""
        return bool(_EVERY_ARTICLE.search(self.text))

    @property
    def asked_before(self) -> Question | None:
        """For a "more" question, the latest earlier question that was not one: what to say more of."""
        for n in range(len(self.history) - 1, -1, -1):
            earlier = self.history[n][0]
            if kind_of(clean(earlier)) != MORE:
                return Question(clean(earlier)[:MAX_QUESTION_CHARS], history=self.history[:n])
        return None

    @property
    def said_before(self) -> str:
        """Every earlier answer of the conversation, as one text (what a "more" answer must not repeat)."""
        return "\n".join(answer for _, answer in self.history)

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
