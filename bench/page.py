"""``python -m bench.page``: time from starting the chat page to a usable page, and to answers.

Starts ``python -m ui`` on a fresh RAG_HOME (the converted model is reused from
RAG_MODEL_CACHE when it is there), waits for the page, then asks through the page's own
Gradio API and times the first streamed update and the finished answer.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

from bench import server

QUESTIONS = ["市住建局取消了哪些纸质申报材料？", "乡村教育要实现怎样的转变？", "师德方面建立了什么清单？"]


def main() -> int:
    from gradio_client import Client

    with tempfile.TemporaryDirectory(prefix="rag-ui-bench-") as home:
        began = time.perf_counter()
        try:
            proc, url = server.start_page(env={"RAG_HOME": home})
        except server.ServerFailed as e:
            print(f"the page did not start: {e}", file=sys.stderr)
            return 1
        try:
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
