"""``python -m bench.masks --work /tmp/rag-scale``: a filtered question's BM25 mask on the
collection that ``bench.scale`` built in ``--work``, the scope asked once per chunk (as the mask
was made before) and once per (source, interviewee) pair (``LexicalIndex.mask``), three times
each; the first pair-wise mask also codes the pairs (once per index version)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def masks(work: Path) -> int:
    """The mask on the collection ``work`` holds (``--work`` of ``bench.scale``)."""
    from rag.config import Settings
    from rag.lexical import folder, load
    from rag.types import Scope

    home = work / "home"
    name = Settings.from_env().collection_name
    stamp = (home / f"{name}.stamp").read_text()
    count = json.loads((folder(home, name) / stamp / "complete.json").read_text())["chunks"]
    index = load(home, name, stamp, count, ())
    scope = Scope(sources=(index.sources[0],), hidden=frozenset({index.sources[-1]}))

    def per_chunk(scope: Scope) -> np.ndarray:
        inside = (scope.allows(s, p) for s, p in zip(index.sources, index.interviewees, strict=True))
        return np.fromiter(inside, dtype=np.float32, count=count)

    print(f"| {count:,} chunks | milliseconds |\n|---|---|")
    steps = [("per pair, coding the pairs first", index.mask)] + [
        ("per chunk", per_chunk),
        ("per pair", index.mask),
    ] * 3
    for step, mask in steps:
        began = time.perf_counter()
        mask(scope)
        print(f"| {step} | {1000 * (time.perf_counter() - began):,.0f} |", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.masks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-scale"))
    return masks(parser.parse_args(argv).work)


if __name__ == "__main__":
    sys.exit(main())
