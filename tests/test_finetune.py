"""Fine-tuning the encoder (bench/finetune.py): pairs from the fit part only, the token embeddings left as they are."""

from __future__ import annotations

import torch

from bench import finetune
from rag.e5_convert import ensure_e5_folder


def test_pairs_hold_their_answer_and_fit_and_test_share_no_question():
    fit, test = finetune.examples("fit"), finetune.examples("test")
    assert len(fit) > 3000 and len(test) > 1000
    assert not {(e.question, e.sentences[e.answer]) for e in fit} & {(e.question, e.sentences[e.answer]) for e in test}
    for example in fit[:200] + test[:200]:
        assert 0 <= example.answer < len(example.sentences) > 1


def test_a_few_steps_change_the_layers_and_not_the_token_embeddings(model_cache):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(ensure_e5_folder(model_cache)), device="cpu")
    model.max_seq_length = 64
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pairs = finetune.examples("fit")[:8]
    finetune.train(model, pairs, epochs=1, batch_size=4, rate=1e-4, seed=0)
    after = model.state_dict()
    words = [k for k in after if k.endswith("word_embeddings.weight")]
    assert len(words) == 1 and torch.equal(before[words[0]], after[words[0]])
    changed = [k for k in after if not torch.equal(before[k], after[k])]
    assert changed and all(".encoder.layer." in k or "embeddings." in k for k in changed)
    ranks = finetune.ranks(model, finetune.examples("test")[:10])
    assert len(ranks) == 10 and (ranks >= 0).all()
