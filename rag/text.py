"""Small text helpers shared by retrieval and answering: tokens, sentences, language."""

from __future__ import annotations

import logging
import re
from functools import lru_cache

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[0-9A-Za-z\u3400-\u9fff]")
_SENTENCE_END = re.compile(r"(?:[。！？；!?;]|…+|\.{3,})+[”’\"'」』）)】]*")

# Words that say what kind of answer is wanted, not what it is about.
STOPWORDS = frozenset(
    """
    的 了 是 在 和 与 及 或 对 把 被 从 向 为 以 于 由 等 这 那 其 之 也 都 还 又 就 而 并 且 吗 呢 吧 啊 么
    什么 哪些 哪个 哪里 哪儿 哪几 几 哪 怎么 怎样 怎么样 如何 多少 多长 为什么 为何 是否 是不是 有没有 有何 有哪些
    请问 请 指 指的是 是指 受访者 受访 受访人 采访 访谈 谁 哪位 哪几位 方面 方面 一些 有关 关于 相关 提到 谈到 说 讲 表示 介绍 问题 内容 要求 需要 通过 进行
    他 她 它 他们 她们 它们 我们 你们 你 我 该 此 这个 那个 这些 那些 上述 所 中 上 下 个 位 项 种
    the a an of to in on for and or is are was were be been what which who whom how many much does do did
    why when where that this these those it its they them he she his her with by from as at about into
    """.split()
)


# "几位", "哪所", "多少个": the shape of the answer, not its subject.
_QUESTION_WORD = re.compile(r"^(?:哪|几|多少)[\u4e00-\u9fff]?$")


def is_content_word(word: str) -> bool:
    return has_words(word) and word not in STOPWORDS and not _QUESTION_WORD.match(word)


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def has_words(text: str) -> bool:
    """True when ``text`` holds at least one letter, digit or Chinese character."""
    return bool(_WORD.search(text))


_CODE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


def without_markup(text: str) -> str:
    """``text`` with HTML tags, and the code of script and style elements, taken out."""
    return _TAG.sub(" ", _CODE.sub(" ", text))


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str) -> list[str]:
    """Search tokens of ``text`` for BM25: jieba's search-mode words, lower-cased, no stopwords."""
    words = _jieba().lcut_for_search(text.lower())
    return [w for w in words if is_content_word(w)]


def count_tokens(text: str) -> int:
    """The size of ``text`` in jieba's words, each punctuation mark one (what API usage reports)."""
    return sum(1 for w in _jieba().lcut(text) if not w.isspace())


def sentence_spans(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, shifted by ``offset``; line ends end sentences."""
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        cut = line.start()
        for match in _SENTENCE_END.finditer(line.group()):
            spans.append((cut, line.start() + match.end()))
            cut = line.start() + match.end()
        if cut < line.end():
            spans.append((cut, line.end()))
    result = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start and has_words(text[start:end]):
            result.append((start + offset, end + offset))
    return result


def key_terms(text: str) -> dict[str, list[str]]:
    """The content words of a question (jieba's precise mode), each with its shorter parts.

    Coverage is counted on these rather than on search-mode tokens, which list a
    compound and its parts side by side and so would count one word three times.
    """
    jieba = _jieba()
    terms: dict[str, list[str]] = {}
    for word in jieba.lcut(text.lower()):
        if not is_content_word(word) or word in terms:
            continue
        parts = [p for p in jieba.lcut_for_search(word) if p != word and len(p) >= 2 and p not in STOPWORDS]
        terms[word] = parts
    return terms
