"""``python -m ingest.bench``: ingestion timings of the bundled collection, each in a fresh process.

Cold start: a new RAG_HOME and an empty model cache (the model is converted, then loaded).
Warm model: a new RAG_HOME, the converted model already cached.  Re-ingest: the same
RAG_HOME again, nothing changed.  Peak memory is the largest resident size of the runs.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(home: Path, cache: Path) -> tuple[float, float]:
    env = {**os.environ, "RAG_HOME": str(home), "RAG_MODEL_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rag.cli", "ingest", "--quiet"], env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - began
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        tmp = Path(tmp)
        rows = [
            ("cold start (convert + load model, embed 38 chunks)", *_run(tmp / "home1", tmp / "models")),
            ("warm model (load model, embed 38 chunks)", *_run(tmp / "home2", tmp / "models")),
            ("re-ingest, nothing changed", *_run(tmp / "home2", tmp / "models")),
        ]
    print("| run | seconds | peak memory so far (MB) |")
    print("|---|---|---|")
    for name, seconds, peak in rows:
        print(f"| {name} | {seconds:.1f} | {peak:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
