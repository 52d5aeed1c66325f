"""How the SQuAD-style sets are split by article for the answer scorer: fit, calibrate, test, held out."""

from __future__ import annotations

import hashlib

PARTS = ("fit", "calibrate", "test")
HELD_OUT_SHARE = 0.2  # of each part's articles, left out of the index: their questions must be refused


def part_of(title: str) -> str:
    """fit, calibrate or test: 60 / 20 / 20 by a hash of the article's title."""
    bucket = int(hashlib.sha256(f"part:{title}".encode()).hexdigest(), 16) % 100
    return "fit" if bucket < 60 else "calibrate" if bucket < 80 else "test"


def held_out(title: str) -> bool:
    """Whether the article is left out of the index (its questions must be refused)."""
    return int(hashlib.sha256(f"held:{title}".encode()).hexdigest(), 16) % 100 < 100 * HELD_OUT_SHARE
