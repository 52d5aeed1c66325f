"""``python -m ui.bench``: time from starting the chat page to a usable page, and to answers.

Starts ``python -m ui`` on a fresh RAG_HOME (the converted model is reused from
RAG_MODEL_CACHE when it is there), waits for the page, then asks through the page's own
Gradio API and times the first streamed update and the finished answer.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

QUESTIONS = ["市住建局取消了哪些纸质申报材料？", "乡村教育要实现怎样的转变？", "师德方面建立了什么清单？"]


def main() -> int:
    from gradio_client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="rag-ui-bench-") as home:
        env = {**os.environ, "RAG_HOME": home, "HF_HUB_OFFLINE": "1"}
        began = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ui", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None or time.perf_counter() - began > 600:
                        print("the page did not start", file=sys.stderr)
                        return 1
                    time.sleep(0.2)
            ready = time.perf_counter() - began
            client = Client(url, verbose=False)
            firsts, totals = [], []
            for question in QUESTIONS * 3:
                t = time.perf_counter()
                job = client.submit(question, [], api_name="/ask")
                first = None
                for _ in job:
                    if first is None:
                        first = time.perf_counter() - t
                job.result()
                totals.append(time.perf_counter() - t)
                firsts.append(first if first is not None else totals[-1])
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| `rag ui` on a fresh RAG_HOME to a usable page (includes indexing the bundled collection) | {ready:.1f} s |"
    )
    print(
        f"| Enter to first streamed update, warm (median of {len(firsts)}) | {1000 * statistics.median(firsts):.0f} ms |"
    )
    print(f"| Enter to full answer, warm (median of {len(totals)}) | {1000 * statistics.median(totals):.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
