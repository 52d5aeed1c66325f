"""Question kinds, read once in ``Question``: wordings of our own, not the conversation sets'."""

from __future__ import annotations

import pytest

from rag.question import FACTOID, MORE, OPEN, SUMMARY, WHO, Question, kind_of


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # open: how / what measures / what was done / tell me about
        ("水务局是怎样治理河道的？", OPEN),
        ("市里如何推进老旧小区改造？", OPEN),
        ("环保局采取了哪些具体措施？", OPEN),
        ("交通局在缓解拥堵上做了什么？", OPEN),
        ("文旅局取得了哪些成效？", OPEN),
        ("谈谈他们的人才引进工作", OPEN),
        ("他怎么看待数字经济？", OPEN),
        ("What steps has the transport bureau taken?", OPEN),
        ("How did the county develop tourism?", OPEN),
        ("What measures were announced for small firms?", OPEN),
        # factoid: a fact, a count, a date, a kind of thing
        ("审批时效提升了多少？", FACTOID),
        ("开发区管委会主任毕业于哪所大学？", FACTOID),
        ("汉服文化节在什么时候举办？", FACTOID),
        ("乡村教育要实现怎样的转变？", FACTOID),  # 怎样的: what kind of, not how
        ("How many schools were built?", FACTOID),
        ("住建局取消了哪些纸质申报材料？", FACTOID),
        ("这两本书分别是谁写的？", FACTOID),  # each one's fact, not who said what
        # who-said
        ("哪几位局长提到了营商环境？", WHO),
        ("谁谈到了人才？", WHO),
        ("哪些部门提及了数字化？", WHO),
        ("两位受访者各自怎么看待改革？", WHO),
        ("Which officials talked about tourism?", WHO),
        ("Who mentioned the business environment?", WHO),
        # summary
        ("这篇采访主要讲了什么？", SUMMARY),
        ("帮我概括一下水务局的访谈", SUMMARY),
        ("交通局局长的访谈有哪些要点？", SUMMARY),
        ("这几篇文章分别谈了哪几个方面？", SUMMARY),
        ("Summarize the interview with the mayor.", SUMMARY),
        ("What is this interview about?", SUMMARY),
        # more
        ("还有吗", MORE),
        ("还有别的做法吗？", MORE),
        ("其他呢？", MORE),
        ("再讲讲", MORE),
        ("Anything else?", MORE),
        ("What else?", MORE),
        # traditional characters
        ("這篇訪談主要講了什麼？", SUMMARY),
        ("哪些受訪者談到了教育？", WHO),
        ("水務局是怎麼做的？", OPEN),
        ("還有別的嗎？", MORE),
        ("銀河的水質如何？", FACTOID),  # how X is: a fact, not how it was done
    ],
)
def test_kind_of_wordings(text, kind):
    assert kind_of(text) == kind


def test_more_needs_a_conversation():
    assert Question.parse("还有呢？").kind == FACTOID
    assert Question.parse("还有呢？", history=[("住建局怎么加强监管？", "……[1]")]).kind == MORE


def test_more_with_a_topic_of_its_own_is_a_new_question():
    asked = Question.parse("还有哪些学校撤并了？", history=[("教育局怎样优化布局？", "……")])
    assert asked.kind != MORE


def test_a_follow_up_about_a_new_aspect_keeps_the_earlier_kind():
    history = [("住建局怎么优化营商环境？", "……[1]")]
    assert Question.parse("那监管方面呢？", history=history).kind == OPEN
    assert Question.parse("他毕业于哪所大学？", history=history).kind == FACTOID


def test_the_question_a_more_follows_and_what_was_said():
    history = [("教育局在教师队伍上有什么打算？", "第一句。[1]"), ("还有呢？", "第二句。[1]")]
    q = Question.parse("还有别的吗？", history=history)
    assert q.kind == MORE
    assert q.asked_before.text == "教育局在教师队伍上有什么打算？"
    assert "第一句。" in q.said_before and "第二句。" in q.said_before


def test_several_articles_at_once():
    assert Question.parse("请介绍一下这几篇访谈。").every_article
    assert not Question.parse("请介绍一下住建局的访谈。").every_article


def test_a_refusal_is_no_kind():
    assert Question.parse("").kind == FACTOID
