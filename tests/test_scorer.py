"""The learned answer scorer's parts with fakes: candidate sentences, features, the model file, choosing, refusing."""

from __future__ import annotations

import numpy as np
import pytest

from rag.errors import ModelError
from rag.features import FEATURES, asked_type, holds_type, rows, subjects
from rag.question import Question
from rag.scorer import GATHER, LearnedAnswerer, ScorerModel, Trees, candidate_sentences
from rag.types import Chunk, Hit

TEXT = "住建局访谈\n市住建局取消纸质申报材料。审批时效提升50%以上。\n我们还建立了信用监管制度。"


def _hit(rank: int = 0, source: str = "/a.txt", article: int = 1, title: str = "住建局访谈") -> Hit:
    start = TEXT.index("市住建局")
    chunk = Chunk(
        TEXT[start:], source, "h" + source, article, title, "市住建局局长", 2, 3, start, len(TEXT), "text",
        paragraphs=((2, start), (3, TEXT.index("我们"))),
    )  # fmt: skip
    return Hit(chunk, 1.0 / (rank + 1), dense_rank=rank + 1, lexical_rank=None, similarity=0.8)


def _answerer(probabilities: dict[str, float], threshold: float = 0.3) -> LearnedAnswerer:
    class Model:
        def __init__(self):
            self.texts: list[str] = []

        def threshold_for(self, question):
            return threshold

        def probabilities(self, table):
            return np.asarray([next((p for w, p in probabilities.items() if w in t), 0.0) for t in self.texts])

    model = Model()

    def similarity(question, texts):
        model.texts = texts
        return np.full(len(texts), 0.8)

    return LearnedAnswerer(lambda text: {"住建局": (1.0, [])}, similarity, lambda text: 0.7, model)


def test_candidates_are_every_sentence_once_with_its_place_in_the_paragraph():
    sentences = candidate_sentences([_hit(0), _hit(1)])  # the same chunk twice: sentences once
    assert [s.text for s in sentences] == [
        "市住建局取消纸质申报材料。",
        "审批时效提升50%以上。",
        "我们还建立了信用监管制度。",
    ]
    assert [s.position for s in sentences] == [0, len("市住建局取消纸质申报材料。"), 0]
    assert all(TEXT[s.start : s.end] == s.text for s in sentences)


def test_feature_rows_name_the_subject_and_the_kind_of_answer():
    sentences = candidate_sentences([_hit()])
    question = Question.parse("锦州开发区的审批时效提升了多少？")
    table = rows(question, sentences, {"审批": (1.0, []), "时效": (1.0, [])}, np.full(len(sentences), 0.9), 0.8)
    assert table.shape == (3, len(FEATURES))
    row = dict(zip(FEATURES, table[1]))
    assert row["type_asked"] == 1 and row["type_found"] == 1  # a number is asked, and "50%" is one
    assert row["coverage"] == 1.0 and row["subjects"] >= 1
    assert row["lift"] == pytest.approx(0.1) and row["chunk_lift"] == pytest.approx(0.0)
    assert row["subject_in_sentence"] < 1 and row["subject_in_chunk"] < 1 and row["subject_in_article"] < 1
    assert "锦州" in "".join(subjects(question.text))


def test_answer_kinds():
    assert asked_type(Question.parse("谁担任局长？")) == 2 and holds_type(2, "局长于晓峰表示。")
    assert (
        asked_type(Question.parse("哪一年开始的？")) == 4 and holds_type(4, "2021年以来") and not holds_type(4, "我们")
    )
    assert asked_type(Question.parse("What did they do?")) == 0


def test_a_factoid_gets_one_sentence_unless_another_is_nearly_as_likely():
    hits = [_hit()]
    one = _answerer({"纸质": 0.9, "审批": 0.6}).answer(Question.parse("住建局取消了什么材料？"), hits)
    assert one.found and len(one.citations) == 1 and "纸质" in one.text
    two = _answerer({"纸质": 0.9, "审批": 0.85}).answer(Question.parse("住建局取消了什么材料？"), hits)
    assert len(two.citations) == 2


def test_a_list_gathers_only_likely_sentences():
    answer = _answerer({"纸质": 0.9, "审批": GATHER + 0.1, "信用": GATHER - 0.1}).answer(
        Question.parse("住建局有哪些举措？"), [_hit()]
    )
    assert [c.quote[:2] for c in answer.citations] == ["市住", "审批"]


def test_a_sentence_without_what_is_asked_for_is_no_candidate():
    answer = _answerer({"纸质": 0.9, "审批": 0.9}).answer(Question.parse("住建局新建了多少套住房？"), [_hit()])
    assert not answer.found  # no sentence holds a count of 套


def test_below_the_threshold_the_collection_does_not_say():
    answer = _answerer({"纸质": 0.2}, threshold=0.3).answer(Question.parse("住建局取消了什么材料？"), [_hit()])
    assert not answer.found and answer.citations == [] and "没有找到" in answer.text


def test_a_refusal_shows_the_closest_sentences_best_first_verbatim_with_their_probability():
    scores = {"纸质": 0.2, "信用": 0.1, "审批": 0.05}
    answer = _answerer(scores, threshold=0.3).answer(Question.parse("住建局取消了什么材料？"), [_hit()])
    assert not answer.found and answer.citations == []
    assert [c.quote for c in answer.closest] == ["市住建局取消纸质申报材料。", "我们还建立了信用监管制度。"]
    assert [c.score for c in answer.closest] == [0.2, 0.1] and [c.n for c in answer.closest] == [1, 2]
    assert all(TEXT[c.start : c.end] == c.quote and c.interviewee == "市住建局局长" for c in answer.closest)
    assert [c.paragraph for c in answer.closest] == [2, 3]
    found = _answerer({"纸质": 0.9}).answer(Question.parse("住建局取消了什么材料？"), [_hit()])
    assert found.found and found.closest == []


def test_a_subject_found_nowhere_in_the_source_is_attributed():
    answer = _answerer({"审批": 0.9}).answer(Question.parse("锦州开发区的审批时效提升了多少？"), [_hit()])
    assert answer.text.startswith("《住建局访谈》（市住建局局长）：")


def test_model_file_round_trip_and_wrong_features(tmp_path):
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(FEATURES)))
    y = (x[:, 0] > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1}
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), 10)
    shared, meaning = (
        Trees(booster.model_to_string(), (1.0, 0.0), 0.4),
        Trees(booster.model_to_string(), (2.0, 0.0), 0.2),
    )
    ScorerModel(shared, meaning).save(tmp_path / "m.json")
    model = ScorerModel.load(tmp_path / "m.json")
    table = x[:6].copy()
    table[:3, FEATURES.index("cjk")] = 1.0  # the first three asked in Chinese, the rest not
    table[3:, FEATURES.index("cjk")] = 0.0
    p = model.probabilities(table)
    assert p.shape == (6,) and ((p > 0) & (p < 1)).all()
    assert np.allclose(p[:3], shared.probabilities(table[:3])) and np.allclose(p[3:], meaning.probabilities(table[3:]))
    assert model.threshold_for(Question.parse("问题？")) == 0.4 and model.threshold_for(Question.parse("Why?")) == 0.2
    text = (tmp_path / "m.json").read_text().replace('"lift"', '"something else"', 1)
    (tmp_path / "m.json").write_text(text)
    with pytest.raises(ModelError, match="retrain"):
        ScorerModel.load(tmp_path / "m.json")


def test_a_year_is_a_calendar_year_and_traditional_questions_are_answered_in_kind():
    year = Question.parse("于晓峰是哪一年开始担任局长的？")
    assert not year.type_found("用x年左右时间从根本上提升") and year.type_found("2021年起担任")
    assert Question.parse("第二帝國在哪一年滅亡?").not_found == "資料中沒有找到這個問題的答案。"
    assert Question.parse("第二帝国在哪一年灭亡？").not_found == "资料中没有找到这个问题的答案。"
