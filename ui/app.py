"""The Gradio chat page: a thin layer over ``rag.assistant.Assistant`` and ``ingest.pipeline``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ingest.parse import SUPPORTED_SUFFIXES
from rag.errors import RagError
from rag.references import with_references
from ui.render import answer_html, sources_html, text_html

log = logging.getLogger(__name__)

# One of each kind a person asks: a fact, an open question, who said it, an overview, English.
EXAMPLES = [
    "市住建局取消了哪些纸质申报材料？",
    "住建局在提高企业服务质量上做了什么？",
    "哪几位受访者谈到了营商环境？",
    "住建局局长的采访讲了哪几个方面？",
    "By how much did the municipal housing and construction bureau improve approval efficiency?",
]
EMPTY_SOURCES = '<div class="src-meta">回答的出处会显示在这里。</div>'
HEADERS = [
    "标题 title",
    "受访者 interviewee",
    "刊发 published",
    "文件 file",
    "文章 articles",
    "片段 chunks",
    "索引时间 ingested",
]


class Collection:
    """What the collection panel does, over ``ingest.pipeline`` (replaceable in tests)."""

    def __init__(self, settings, embedder=None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.cancelled = threading.Event()

    def documents(self) -> list[dict]:
        from ingest.collection import list_documents

        return list_documents(self.settings)

    def add(self, uploads: list[tuple[Path, str]], on_progress: Callable[[int, int, str], None] | None = None) -> str:
        """Store and index ``uploads``; the outcome as the page shows it."""
        report, problems = self.add_files(uploads, on_progress)
        if report is None:
            summary = "没有可索引的文件。"
        else:
            done = sum(1 for f in report.files if f.status in ("indexed", "unchanged"))
            summary = f"已索引 {done} 个文件，新增 {report.added} 个片段（{report.seconds:.1f} 秒）。"
        return summary + "".join(f"\n⚠️ {p}" for p in problems)

    def add_files(self, uploads: list[tuple[Path, str]], on_progress=None):
        """Store and index ``uploads``: (the run's report or None, a reason per file refused); refused files are not kept."""
        from ingest.collection import discard_upload, store_upload
        from ingest.pipeline import ingest

        self.cancelled.clear()
        paths, problems = [], []
        for temp_path, name in uploads:
            try:
                paths.append(store_upload(self.settings, temp_path, name))
            except RagError as e:
                problems.append(str(e))
        if not paths:
            return None, problems
        report = ingest(paths, self.settings, on_progress=on_progress, embedder=self.embedder, cancel=self.cancelled)
        problems += [f.reason for f in report.failed]
        indexed = {d["source"] for d in self.documents()}
        for outcome in report.failed:
            if outcome.path not in indexed:
                discard_upload(self.settings, Path(outcome.path))
        return report, problems

    def cancel(self) -> None:
        """Stop the file being read now (a .docx, .pdf, web page or scan); the run reports it cancelled."""
        self.cancelled.set()

    def remove(self, keys: list[str]) -> str:
        """Remove documents named by their shown path (or their source); the uploaded copies go too."""
        from ingest.collection import remove_documents

        wanted = set(keys)
        sources = [d["source"] for d in self.documents() if d["path"] in wanted or d["source"] in wanted]
        if not sources:
            return "没有找到这些文件（已删除？请刷新）。"
        n = remove_documents(self.settings, sources, embedder=self.embedder)
        return f"已删除 {len(sources)} 个文件的 {n} 个片段。"


def _document_rows(collection: Collection) -> tuple[list[list], list[tuple[str, str]]]:
    rows, choices = [], []
    for d in collection.documents():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(d["ingested_at"])) if d["ingested_at"] else ""
        people = "；".join(dict.fromkeys(p for p in d.get("interviewees", []) if p))
        published = "；".join(
            dict.fromkeys(
                " ".join(x for x in pair if x) for pair in zip(d.get("publishers", []), d.get("dates", [])) if any(pair)
            )
        )
        rows.append([d["title"], people, published, d["path"], len(d["articles"]), d["chunks"], when])
        choices.append((f"{d['title']} — {d['path']}", d["path"]))
    return rows, choices


class ChatPage:
    """The page's handlers over ``assistant`` and ``collection``; ``build()`` lays them out.

    ``assistant`` is anything with ``ask_stream``, ``documents``, ``settings`` and ``mode``.
    """

    def __init__(self, assistant, collection: Collection | None = None) -> None:
        self.assistant = assistant
        self.collection = collection or Collection(assistant.settings, getattr(assistant, "embedder", None))

    def respond(self, message: str, chat: list, turns: list, within: list | None = None):
        """Stream the answer into the chat, then show it with its sources; remember the turn.

        ``within``: interviewees the answer must come from (the page's selector); empty: all.
        """
        import gradio as gr

        chat = [*chat, {"role": "user", "content": text_html(message or "")}, {"role": "assistant", "content": "…"}]
        try:
            stream = self.assistant.ask_stream(message, history=turns, interviewees=list(within or []) or None)
            for text in stream:
                chat[-1]["content"] = text_html(text)  # unchecked text: never markup, never a link
                yield chat, turns, gr.update(), "", ""
            answer = stream.answer()
        except RagError as e:
            text = f"⚠️ {self._public(str(e))}"
            chat[-1]["content"] = text_html(text)
            yield chat, turns, f'<div class="src-none">{text_html(text)}</div>', "", ""
            return
        except Exception as e:  # a full disk, a failure nobody foresaw: say so, keep serving
            log.exception("answering failed")
            text = f"⚠️ 回答时出错（{e.__class__.__name__}）：{self._public(str(e))}"
            chat[-1]["content"] = text_html(text)
            yield chat, turns, f'<div class="src-none">{text_html(text)}</div>', "", ""
            return
        chat[-1]["content"] = answer_html(answer)
        if answer.found:
            turns = [*turns, (answer.question, answer.text)]
        # For pasting into a report: the answer, then numbered references (《title》, interviewee, paragraph).
        copy = with_references(answer) if answer.found else ""
        yield chat, turns, sources_html(answer, self.assistant.documents), "", copy

    def scopes(self):
        """The interviewees a question can be limited to, as the selector lists them."""
        import gradio as gr

        choices = {}
        for d in self.collection.documents():
            for title, person in zip(d["articles"], d.get("interviewees", [])):
                if person:
                    choices.setdefault(person, f"{person} — 《{title}》")
        return gr.update(choices=[(label, person) for person, label in choices.items()])

    def _public(self, message: str) -> str:
        """``message`` without the server's folders: RAG_HOME is named, not shown."""
        return message.replace(str(self.assistant.settings.home), "RAG_HOME")

    def refresh(self):
        """The collection table and the removal choices, as they are now."""
        import gradio as gr

        rows, choices = _document_rows(self.collection)
        return gr.update(value=rows), gr.update(choices=choices, value=[])

    def upload(self, files, progress=None):
        """Store and index the uploaded files; a progress bar while it runs; Gradio's copies deleted after."""
        import gradio as gr

        if not files:
            return ("请先选择文件。", *self.refresh(), gr.update())
        uploads = [(Path(f), Path(getattr(f, "orig_name", None) or f).name) for f in files]

        def on_progress(done: int, total: int, label: str) -> None:
            if progress is not None:
                progress(done / total if total else 0.0, desc=f"索引 {Path(label).name}" if label else "索引")

        try:
            message = self.collection.add(uploads, on_progress)
        except RagError as e:
            message = f"⚠️ {e}"
        finally:
            _delete_gradio_copies([path for path, _ in uploads])
        return (self._public(message), *self.refresh(), gr.update(value=None))

    def remove(self, sources):
        """Remove the chosen files from the index."""
        if not sources:
            message = "请先选择要删除的文件。"
        else:
            try:
                message = self.collection.remove(list(sources))
            except RagError as e:
                message = f"⚠️ {e}"
        return (self._public(message), *self.refresh())

    def build(self):
        """The page as ``gr.Blocks``, queue limits set."""
        import gradio as gr

        settings = self.assistant.settings
        # Whatever Gradio keeps in its temporary folder (a file uploaded but never indexed) goes within the hour.
        with gr.Blocks(title="访谈问答 · Interview Q&A", delete_cache=(600, 3600)) as app:
            gr.Markdown(
                "## 访谈问答 · Interview Q&A\n每句回答都引自原文，点击 [n] 查看出处。Every answer quotes the source; click [n] to see where."
            )
            turns, copied = gr.State([]), gr.State("")
            with gr.Tab("问答 Chat"):
                chatbot, question, send, clear, sources, within, copy_box = self._chat_tab(gr)
            with gr.Tab("资料库 Collection"):
                table, files, add, stop, refresh_button, chosen, drop, status = self._collection_tab(gr, settings)
            with gr.Tab("设置 Settings"):
                gr.Markdown(_settings_text(settings, self.assistant.mode))

            # Every answer, from Enter or the button, shares one pool of ``ui_concurrency`` workers;
            # a conversation's turns live in its own session State, never in a shared variable.
            answering = {"concurrency_id": "answer", "concurrency_limit": settings.ui_concurrency}
            outputs = [chatbot, turns, sources, question, copied]
            asked = [question, chatbot, turns, within]
            show_copy = {
                "fn": lambda text: text,
                "inputs": [copied],
                "outputs": [copy_box],
                "api_visibility": "private",
            }
            question.submit(self.respond, asked, outputs, api_name="ask", **answering).then(**show_copy)
            send.click(self.respond, asked, outputs, api_visibility="private", **answering).then(**show_copy)
            clear.click(
                lambda: ([], [], EMPTY_SOURCES, "", ""),
                None,
                outputs,
                api_visibility="private",
            ).then(**show_copy)
            # Changes to the collection run one at a time (ingestion also holds a lock on RAG_HOME).
            writing = {"concurrency_id": "collection", "concurrency_limit": 1}
            add.click(
                _upload_with_progress(self), [files], [status, table, chosen, files], api_name="upload", **writing
            )
            # Outside the queue: it must run while the upload it stops is still running.
            stop.click(self.collection.cancel, None, None, queue=False, api_name="stop_upload")
            drop.click(self.remove, [chosen], [status, table, chosen], api_name="remove", **writing)
            refresh_button.click(self.refresh, None, [table, chosen], api_name="documents")
            app.load(self.refresh, None, [table, chosen], api_visibility="private")
            for event in (add.click, drop.click, refresh_button.click, app.load):
                event(self.scopes, None, [within], api_visibility="private")
        # Beyond ``ui_queue_size`` waiting requests, a new one is refused at once with Gradio's
        # "queue is full" message instead of piling up; the process and other sessions carry on.
        app.queue(max_size=settings.ui_queue_size, default_concurrency_limit=settings.ui_concurrency)
        return app

    @staticmethod
    def _chat_tab(gr):
        with gr.Row():
            with gr.Column(scale=3):
                # Messages are HTML made by ui.render (text escaped, own links only): no Markdown, no LaTeX.
                chatbot = gr.Chatbot(
                    label="对话",
                    height=520,
                    sanitize_html=True,
                    render_markdown=False,
                    latex_delimiters=[],
                    elem_id="chat",
                )
                question = gr.Textbox(
                    placeholder="输入问题，按回车 · Type a question and press Enter",
                    show_label=False,
                    elem_id="question",
                )
                with gr.Row():
                    send = gr.Button("提问 Ask", variant="primary", elem_id="ask")
                    clear = gr.Button("清空对话 Clear", elem_id="clear")
                # Custom values: a program may name an interviewee (or part of a name) without listing them first.
                within = gr.Dropdown(
                    label="只在这些受访者的访谈中查找 Only within these interviews (empty: all)",
                    multiselect=True,
                    choices=[],
                    value=[],
                    allow_custom_value=True,
                    elem_id="within",
                )
                gr.Examples(EXAMPLES, inputs=[question], label="示例问题 Examples")
            with gr.Column(scale=2):
                gr.Markdown("### 出处 Sources")
                sources = gr.HTML(EMPTY_SOURCES, elem_id="sources")
                copy_box = gr.Textbox(
                    label="复制（含参考文献）Copy with references",
                    lines=4,
                    interactive=False,
                    buttons=["copy"],
                    elem_id="copy-with-references",
                )
        return chatbot, question, send, clear, sources, within, copy_box

    @staticmethod
    def _collection_tab(gr, settings):
        table = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="documents")
        files = gr.File(
            label=f"上传 txt / md / docx / pdf（每个不超过 {settings.max_file_mb} MB）",
            file_count="multiple",
            file_types=list(SUPPORTED_SUFFIXES),
            elem_id="upload",
        )
        with gr.Row():
            add = gr.Button("上传并索引 Upload and index", variant="primary", elem_id="add")
            stop = gr.Button("停止读取 Stop reading", elem_id="stop-upload")
            refresh_button = gr.Button("刷新 Refresh")
        # Custom values: a program may name a file to remove without listing the documents first.
        chosen = gr.Dropdown(
            label="选择要删除的文件 Files to remove", multiselect=True, choices=[], allow_custom_value=True
        )
        drop = gr.Button("删除 Remove", variant="stop")
        status = gr.Markdown(elem_id="collection-status")
        return table, files, add, stop, refresh_button, chosen, drop, status


def _delete_gradio_copies(paths: list[Path]) -> None:
    """Delete Gradio's temporary copies of uploaded files (ours are in RAG_HOME/uploads now)."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()).resolve()
    for path in paths:
        path = Path(path).resolve()
        if path.is_relative_to(folder):
            path.unlink(missing_ok=True)
            if path.parent != folder and not any(path.parent.iterdir()):
                path.parent.rmdir()


def _upload_with_progress(page: ChatPage):
    """``page.upload`` with the progress tracker Gradio fills in (declared as a default argument)."""
    import gradio as gr

    def upload(files, progress=gr.Progress()):
        return page.upload(files, progress)

    return upload


def _settings_text(settings, mode: str) -> str:
    """What the page runs with; folders are named by their variable, never shown (the page may be remote)."""
    where = " on a Chroma server)" if settings.chroma_host else ")"
    model = settings.embed_model if not Path(settings.embed_model).is_absolute() else Path(settings.embed_model).name
    return (
        f"- 向量模型 Embedding model: `{model}`\n"
        f"- 回答方式 Answer mode: `{mode}`\n"
        f"- 索引位置 Index: `RAG_HOME` (collection `{settings.collection_name}`{where}\n"
        f"- 片段 Chunks: {settings.chunk_size} characters, {settings.chunk_overlap} sentence overlap; "
        f"top-k {settings.top_k}"
    )
