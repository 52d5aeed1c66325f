"""The cross-encoder measurement (bench/cross.py): pairs from the fit part only, the token embeddings left as they are."""

from __future__ import annotations

import torch

from bench import cross, finetune
from rag.e5_convert import ensure_e5_folder


def test_pairs_hold_one_answer_per_question_and_negatives_from_its_passage_and_another():
    chosen = finetune.examples("fit")[:20]
    pairs = cross.pairs_of(chosen, negatives=2, seed=0)
    for example in chosen:
        mine = [p for p in pairs if p[0] == example.question]
        assert [p[1] for p in mine if p[2] == 1.0] == [example.sentences[example.answer]]
        negatives = [p[1] for p in mine if p[2] == 0.0]
        assert len(negatives) == min(2, len(example.sentences) - 1) + 1
        assert sum(s in example.sentences for s in negatives) >= len(negatives) - 1


def test_a_few_steps_change_the_layers_and_not_the_token_embeddings_and_it_ranks(model_cache):
    model = cross.Cross(ensure_e5_folder(model_cache), max_length=64)
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    model.train(cross.pairs_of(finetune.examples("fit")[:4], negatives=1, seed=0), batch_size=4, rate=1e-4)
    after = model.model.state_dict()
    words = [k for k in after if k.endswith("word_embeddings.weight")]
    assert len(words) == 1 and torch.equal(before[words[0]], after[words[0]])
    changed = [k for k in after if not torch.equal(before[k], after[k])]
    assert any(".encoder.layer." in k for k in changed) and any(k.startswith("classifier") for k in changed)
    test = finetune.examples("test")[:5]
    ranks = cross.passage_ranks(model, test)
    assert len(ranks) == 5 and all(0 <= r < len(e.sentences) for r, e in zip(ranks, test))
    scores = model.scores(test[0].question, test[0].sentences)
    assert scores.shape == (len(test[0].sentences),) and ((scores > 0) & (scores < 1)).all()
