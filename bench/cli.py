"""How long a cold ``rag ask`` takes, alone and through a running server, beside ``import torch``.

    python -m bench.cli [--runs 3]

Indexes the bundled collection into a temporary RAG_HOME, then times, in one run and in turns:
``python -c "import torch"`` (the floor of anything that loads the model), ``rag ask --local``
(a process that loads the model and answers; with the default ONNX backend and with
``RAG_EMBED_BACKEND=torch``), and ``rag ask`` while a ``rag serve`` of the same
RAG_HOME runs (the question goes to it).  Prints the medians and their ratios to ``import torch``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = "市住建局取消了哪些纸质申报材料？"


def _timed(command: list[str], env: dict) -> float:
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    from bench.server import free_port
    from ingest.pipeline import ingest
    from rag.config import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "RAG_HOME": home, "HF_HUB_OFFLINE": "1"}
        ingest(None, dataclasses.replace(Settings.from_env(), home=Path(home)))
        ask = [sys.executable, "-m", "ui.cli", "ask", QUESTION]
        torch = [sys.executable, "-c", "import torch"]
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with_torch = {**env, "RAG_EMBED_BACKEND": "torch"}
        times: dict[str, list[float]] = {
            "import torch": [],
            "rag ask --local": [],
            "  (torch backend)": [],
            "rag ask (server)": [],
        }
        try:
            _wait(port)
            for _ in range(args.runs):
                times["import torch"].append(_timed(torch, env))
                times["rag ask --local"].append(_timed([*ask, "--local"], env))
                times["  (torch backend)"].append(_timed([*ask, "--local"], with_torch))
                times["rag ask (server)"].append(_timed(ask, env))
        finally:
            server.terminate()
            server.wait(timeout=30)
    floor = statistics.median(times["import torch"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:18} median {median:6.2f} s  = {median / floor:5.2f} x import torch  ({args.runs} runs)")
    return 0


def _wait(port: int, seconds: float = 300) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("rag serve did not start")


if __name__ == "__main__":
    raise SystemExit(main())
