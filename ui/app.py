"""The Gradio chat page: a thin layer over ``rag.assistant.Assistant`` and ``ingest.pipeline``."""

from __future__ import annotations

import argparse
import html
import ipaddress
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rag.errors import RagError
from rag.types import Answer
from ui.render import CSS, answer_markdown, sources_html

log = logging.getLogger(__name__)

EXAMPLES = [
    "市住建局取消了哪些纸质申报材料？",
    "开发区以怎样的奋战姿态确保三年行动首战告捷？",
    "乡村教育要实现怎样的转变？",
    "哪几位受访者谈到了营商环境？",
    "What are the two major research topics completed by the provincial research base?",
]
HEADERS = ["标题 title", "文件 file", "文章 articles", "片段 chunks", "索引时间 ingested"]


class Collection:
    """What the collection panel does, over ``ingest.pipeline`` (replaceable in tests)."""

    def __init__(self, settings, embedder=None) -> None:
        self.settings = settings
        self.embedder = embedder

    def documents(self) -> list[dict]:
        from ingest.pipeline import list_documents

        return list_documents(self.settings)

    def add(self, uploads: list[tuple[Path, str]], on_progress: Callable[[int, int, str], None]) -> str:
        from ingest.pipeline import ingest, store_upload

        paths, problems = [], []
        for temp_path, name in uploads:
            try:
                paths.append(store_upload(self.settings, temp_path, name))
            except RagError as e:
                problems.append(str(e))
        if paths:
            report = ingest(paths, self.settings, on_progress=on_progress, embedder=self.embedder)
            problems += [f.reason for f in report.failed]
            done = len(paths) - len(report.failed)
            summary = f"已索引 {done} 个文件，新增 {report.added} 个片段（{report.seconds:.1f} 秒）。"
        else:
            summary = "没有可索引的文件。"
        return summary + "".join(f"\n⚠️ {p}" for p in problems)

    def remove(self, sources: list[str]) -> str:
        from ingest.pipeline import remove_documents

        n = remove_documents(self.settings, sources, embedder=self.embedder)
        return f"已删除 {len(sources)} 个文件的 {n} 个片段。"


def _document_rows(collection: Collection) -> tuple[list[list], list[tuple[str, str]]]:
    rows, choices = [], []
    for d in collection.documents():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(d["ingested_at"])) if d["ingested_at"] else ""
        rows.append([d["title"], d["file"], len(d["articles"]), d["chunks"], when])
        choices.append((f"{d['title']} — {d['file']}", d["source"]))
    return rows, choices


def build_app(assistant, collection: Collection | None = None):
    """The chat page over ``assistant`` (anything with ``ask_stream``, ``documents``, ``settings``, ``mode``)."""
    import gradio as gr

    collection = collection or Collection(assistant.settings, getattr(assistant, "embedder", None))

    def respond(message: str, chat: list, turns: list):
        chat = [*chat, {"role": "user", "content": html.escape(message or "")}, {"role": "assistant", "content": "…"}]
        answer: Answer | None = None
        try:
            for item in assistant.ask_stream(message, history=turns):
                if isinstance(item, Answer):
                    answer = item
                else:
                    chat[-1]["content"] = html.escape(item)
                    yield chat, turns, gr.update(), ""
        except RagError as e:
            chat[-1]["content"] = f"⚠️ {html.escape(str(e))}"
            yield chat, turns, f'<div class="src-none">{html.escape(str(e))}</div>', ""
            return
        except Exception as e:  # an LLM server that went away, a full disk...: say so, keep serving
            log.exception("answering failed")
            text = f"⚠️ 回答时出错（{e.__class__.__name__}）：{e}"
            chat[-1]["content"] = html.escape(text)
            yield chat, turns, f'<div class="src-none">{html.escape(text)}</div>', ""
            return
        chat[-1]["content"] = answer_markdown(answer)
        if answer.found:
            turns = [*turns, (answer.question, answer.text)]
        yield chat, turns, sources_html(answer, assistant.documents), ""

    def refresh():
        rows, choices = _document_rows(collection)
        return gr.update(value=rows), gr.update(choices=choices, value=[])

    def upload(files, progress=gr.Progress()):
        if not files:
            rows, choices = _document_rows(collection)
            return "请先选择文件。", gr.update(value=rows), gr.update(choices=choices)
        uploads = [(Path(f), Path(getattr(f, "orig_name", None) or f).name) for f in files]

        def on_progress(done: int, total: int, label: str) -> None:
            progress(done / total if total else 0.0, desc=f"索引 {Path(label).name}" if label else "索引")

        try:
            message = collection.add(uploads, on_progress)
        except RagError as e:
            message = f"⚠️ {e}"
        rows, choices = _document_rows(collection)
        return message, gr.update(value=rows), gr.update(choices=choices, value=[])

    def remove(sources):
        if not sources:
            message = "请先选择要删除的文件。"
        else:
            try:
                message = collection.remove(list(sources))
            except RagError as e:
                message = f"⚠️ {e}"
        rows, choices = _document_rows(collection)
        return message, gr.update(value=rows), gr.update(choices=choices, value=[])

    settings = assistant.settings
    with gr.Blocks(title="访谈问答 · Interview Q&A") as app:
        gr.Markdown(
            "## 访谈问答 · Interview Q&A\n每句回答都引自原文，点击 [n] 查看出处。Every answer quotes the source; click [n] to see where."
        )
        turns = gr.State([])
        with gr.Tab("问答 Chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label="对话", height=520, sanitize_html=True, elem_id="chat")
                    question = gr.Textbox(
                        placeholder="输入问题，按回车 · Type a question and press Enter",
                        show_label=False,
                        elem_id="question",
                    )
                    with gr.Row():
                        send = gr.Button("提问 Ask", variant="primary", elem_id="ask")
                        clear = gr.Button("清空对话 Clear", elem_id="clear")
                    gr.Examples(EXAMPLES, inputs=[question], label="示例问题 Examples")
                with gr.Column(scale=2):
                    gr.Markdown("### 出处 Sources")
                    sources = gr.HTML('<div class="src-meta">回答的出处会显示在这里。</div>', elem_id="sources")
        with gr.Tab("资料库 Collection"):
            table = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="documents")
            files = gr.File(
                label=f"上传 txt / md / docx / pdf（每个不超过 {settings.max_file_mb} MB）",
                file_count="multiple",
                file_types=[".txt", ".md", ".docx", ".pdf"],
                elem_id="upload",
            )
            with gr.Row():
                add = gr.Button("上传并索引 Upload and index", variant="primary", elem_id="add")
                refresh_button = gr.Button("刷新 Refresh")
            chosen = gr.Dropdown(label="选择要删除的文件 Files to remove", multiselect=True, choices=[])
            drop = gr.Button("删除 Remove", variant="stop")
            status = gr.Markdown(elem_id="collection-status")
        with gr.Tab("设置 Settings"):
            gr.Markdown(
                f"- 向量模型 Embedding model: `{settings.embed_model}`\n"
                f"- 回答方式 Answer mode: `{assistant.mode}`\n"
                f"- 索引位置 Index: `{settings.home}` (collection `{settings.collection_name}`"
                + (f" on Chroma server {settings.chroma_host}:{settings.chroma_port})" if settings.chroma_host else ")")
                + f"\n- 片段 Chunks: {settings.chunk_size} characters, {settings.chunk_overlap} sentence overlap; top-k {settings.top_k}"
            )

        # Every answer, from Enter or the button, shares one pool of ``ui_concurrency`` workers;
        # a conversation's turns live in its own session State, never in a shared variable.
        answering = {"concurrency_id": "answer", "concurrency_limit": settings.ui_concurrency}
        outputs = [chatbot, turns, sources, question]
        question.submit(respond, [question, chatbot, turns], outputs, api_name="ask", **answering)
        send.click(respond, [question, chatbot, turns], outputs, api_visibility="private", **answering)
        clear.click(
            lambda: ([], [], '<div class="src-meta">回答的出处会显示在这里。</div>', ""),
            None,
            outputs,
            api_visibility="private",
        )
        # Changes to the collection run one at a time (ingestion also holds a lock on RAG_HOME).
        writing = {"concurrency_id": "collection", "concurrency_limit": 1}
        add.click(upload, [files], [status, table, chosen], api_name="upload", **writing)
        drop.click(remove, [chosen], [status, table, chosen], api_name="remove", **writing)
        refresh_button.click(refresh, None, [table, chosen], api_name="documents")
        app.load(refresh, None, [table, chosen], api_visibility="private")
    # Beyond ``ui_queue_size`` waiting requests, a new one is refused at once with Gradio's
    # "queue is full" message instead of piling up; the process and other sessions carry on.
    app.queue(max_size=settings.ui_queue_size, default_concurrency_limit=settings.ui_concurrency)
    return app


def ensure_index(settings, embedder=None, log_to=sys.stderr) -> None:
    """Ingest the bundled collection when the index is empty or older than the bundled file."""
    from tqdm import tqdm

    from ingest.pipeline import BUNDLED_COLLECTION, ingest, list_documents

    documents = list_documents(settings)
    if documents:
        stamp = settings.home / f"{settings.collection_name}.stamp"
        bundled_indexed = any(d["source"] == str(BUNDLED_COLLECTION.resolve()) for d in documents)
        stale = not stamp.exists() or stamp.stat().st_mtime < BUNDLED_COLLECTION.stat().st_mtime
        if not (bundled_indexed and stale):
            return
    print(f"Indexing the bundled collection into {settings.home} …", file=log_to)
    bar = tqdm(total=0, unit="chunk", desc="ingest", file=log_to)

    def on_progress(done: int, total: int, label: str) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    try:
        report = ingest(None, settings, on_progress=on_progress, embedder=embedder)
    finally:
        bar.close()
    print(f"{report.added} chunks added in {report.seconds:.1f} s.", file=log_to)


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Start the chat page (``rag ui`` and ``python -m ui``)."""
    parser = argparse.ArgumentParser(prog="rag ui", description="Start the chat page.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("RAG_UI_PORT", "7860")))
    args = parser.parse_args(argv)

    from rag.assistant import Assistant
    from rag.config import Settings

    auth = os.environ.get("RAG_UI_AUTH")
    if not _is_loopback(args.host):
        if not auth or ":" not in auth:
            print(
                f"error: refusing to listen on {args.host} without a password; set RAG_UI_AUTH=user:password "
                "(or use the default 127.0.0.1)",
                file=sys.stderr,
            )
            return 2
        print(
            f"warning: listening on {args.host}: anyone who can reach it and knows RAG_UI_AUTH can use it",
            file=sys.stderr,
        )
    if args.port and not _port_free(args.host, args.port):
        print(
            f"error: port {args.port} on {args.host} is in use (another rag ui?); pass --port N or set RAG_UI_PORT",
            file=sys.stderr,
        )
        return 2
    try:
        settings = Settings.from_env()
        assistant = Assistant(settings)
        ensure_index(settings, assistant.embedder)
        assistant.warm_up()
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app = build_app(assistant)
    credentials = tuple(auth.split(":", 1)) if auth and ":" in auth else None
    app.launch(
        server_name=args.host,
        server_port=args.port,
        auth=credentials,
        css=CSS,
        max_file_size=f"{settings.max_file_mb}mb",
        show_error=False,
    )
    return 0
