"""The Gradio chat page: a thin layer over ``rag.assistant.Assistant`` and ``ingest.pipeline``."""

from __future__ import annotations

import logging
from pathlib import Path

from rag.errors import RagError
from rag.references import with_references
from ui.collection import HEADERS, Collection, delete_gradio_copies, document_rows
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
# Copies text to the clipboard; where the page is not a secure context (http on another
# host) the Clipboard API is missing, and a selected textarea and execCommand still copy.
# Gradio scopes the page's CSS inside its content; the page's own margins are set here.
HEAD = """<style>@media (max-width: 640px) { .main.fillable.app { padding: 8px 6px !important; } }</style>
<script>
window.ragCopy = async (text) => {
  if (!text) return;
  try { await navigator.clipboard.writeText(text); return; } catch (e) {}
  const area = document.createElement("textarea");
  area.value = text; document.body.appendChild(area); area.select();
  document.execCommand("copy"); area.remove();
};
</script>"""


class ChatPage:
    """The page's handlers over ``assistant`` and ``collection``; ``build()`` lays them out.

    ``assistant`` is anything with ``ask_stream``, ``documents``, ``settings`` and ``mode``.
    """

    def __init__(self, assistant, collection: Collection | None = None) -> None:
        self.assistant = assistant
        self.collection = collection or Collection(assistant.settings, getattr(assistant, "embedder", None))

    def respond(self, message: str, chat: list, turns: list, within: list | None = None, said: list | None = None):
        """Stream the answer into the chat, then show it with its sources; remember the turn.

        ``within``: interviewees the answer must come from (the page's selector); empty: all.
        ``said``: the conversation so far as text to copy, a turn each (question, answer, references).
        Yields (chat, turns, sources, question box, answer to copy, conversation to copy).
        """
        import gradio as gr

        said = list(said or [])
        if not (message or "").strip():
            gr.Warning("请输入一个问题。Please type a question.")
            yield chat, turns, gr.update(), "", gr.update(), said
            return
        chat = [*chat, {"role": "user", "content": text_html(message)}, {"role": "assistant", "content": "…"}]
        try:
            stream = self.assistant.ask_stream(message, history=turns, interviewees=list(within or []) or None)
            for text in stream:
                chat[-1]["content"] = text_html(text)  # unchecked text: never markup, never a link
                yield chat, turns, gr.update(), "", gr.update(), said
            answer = stream.answer()
        except Exception as e:  # RagError: said as it is; anything else (a full disk): named, and the page serves on
            if not isinstance(e, RagError):
                log.exception("answering failed")
            text = f"⚠️ {self._public(str(e))}" if isinstance(e, RagError) else self._failure(e)
            chat[-1]["content"] = text_html(text)
            yield chat, turns, f'<div class="src-none">{text_html(text)}</div>', "", "", [*said, _turn(message, text)]
            return
        chat[-1]["content"] = answer_html(answer)
        if answer.found:
            turns = [*turns, (answer.question, answer.text)]
        # For pasting into a report: the answer, then numbered references (《title》, interviewee, paragraph).
        copy = with_references(answer) if answer.found else answer.text
        yield chat, turns, sources_html(answer, self.assistant.documents), "", copy, [*said, _turn(message, copy)]

    def _failure(self, e: Exception) -> str:
        return f"⚠️ 回答时出错（{e.__class__.__name__}）：{self._public(str(e))}"

    def scopes(self):
        """The interviewees a question can be limited to, as the selector lists them."""
        import gradio as gr

        choices = {}
        for d in self.collection.documents():
            for title, person in zip(d["articles"], d.get("interviewees", [])):
                if person:
                    choices.setdefault(person, f"{person} — 《{title}》")
        return gr.update(choices=[(label, person) for person, label in choices.items()])

    def _said(self, message: str) -> str:
        """A message of the collection panel as HTML: file names and titles stay text, never markup."""
        return text_html(self._public(message))

    def _public(self, message: str) -> str:
        """``message`` without the server's folders: RAG_HOME is named, not shown."""
        return message.replace(str(self.assistant.settings.home), "RAG_HOME")

    def refresh(self):
        """The collection table and the removal choices, as they are now."""
        import gradio as gr

        rows, choices = document_rows(self.collection)
        return gr.update(value=rows), gr.update(choices=choices, value=[])

    def upload(self, files, progress=None):
        """Store and index the uploaded files; a progress bar while it runs; Gradio's copies deleted after."""
        import gradio as gr

        if not files:
            return ("请先选择文件。", *self.refresh(), gr.update())
        uploads = [(Path(f), Path(getattr(f, "orig_name", None) or f).name) for f in files]
        names = [name for _, name in uploads]

        def on_progress(done: int, total: int, label: str) -> None:
            if progress is not None:
                name = Path(label).name if label else ""
                place = f"（第 {names.index(name) + 1}/{len(names)} 个文件）" if name in names else ""
                progress(done / total if total else 0.0, desc=f"索引 {name}{place}" if name else "索引")

        try:
            message = self.collection.add(uploads, on_progress)
        except RagError as e:
            message = f"⚠️ {e}"
        finally:
            delete_gradio_copies([path for path, _ in uploads])
        return (self._said(message), *self.refresh(), gr.update(value=None))

    def ask_removal(self, sources):
        """The confirmation of a removal: which files, how many passages; nothing is removed yet."""
        import gradio as gr

        if not sources:
            return "请先选择要删除的文件。", gr.update(visible=False), ""
        preview = self.collection.removal_preview(list(sources))
        if not preview:
            return "没有找到这些文件（已删除？请刷新）。", gr.update(visible=False), ""
        return "", gr.update(visible=True), self._said(preview)

    def remove(self, sources):
        """Remove the chosen files from the index (after the confirmation)."""
        import gradio as gr

        try:
            message = self.collection.remove(list(sources or []))
        except RagError as e:
            message = f"⚠️ {e}"
        return (self._said(message), *self.refresh(), gr.update(visible=False))

    def build(self):
        """The page as ``gr.Blocks``, queue limits set."""
        import gradio as gr

        settings = self.assistant.settings
        # Whatever Gradio keeps in its temporary folder (a file uploaded but never indexed) goes within the hour.
        with gr.Blocks(title="访谈问答 · Interview Q&A", delete_cache=(600, 3600)) as app:
            gr.Markdown(
                "## 访谈问答 · Interview Q&A\n每句回答都引自原文，点击 [n] 查看出处。Every answer quotes the source; click [n] to see where.",
                elem_id="intro",
            )
            with gr.Tab("问答 Chat"):
                chat = self._chat_tab(gr)
            with gr.Tab("资料库 Collection"):
                shelf = self._collection_tab(gr, settings)
            with gr.Tab("设置 Settings"):
                gr.Markdown(_settings_text(settings, self.assistant.mode), elem_id="settings")
            self._wire_chat(gr, app, chat, settings)
            self._wire_collection(gr, app, shelf, chat["within"])
        # Beyond ``ui_queue_size`` waiting requests, a new one is refused at once with Gradio's
        # "queue is full" message instead of piling up; the process and other sessions carry on.
        app.queue(max_size=settings.ui_queue_size, default_concurrency_limit=settings.ui_concurrency)
        return app

    def _wire_chat(self, gr, app, c: dict, settings) -> None:
        # Every answer, from Enter, the button or an example, shares one pool of ``ui_concurrency``
        # workers; a conversation's turns live in its own session State, never in a shared variable.
        answering = {"concurrency_id": "answer", "concurrency_limit": settings.ui_concurrency}
        outputs = [c["chatbot"], c["turns"], c["sources"], c["question"], c["copy_box"], c["said"]]
        asked = [c["question"], c["chatbot"], c["turns"], c["within"], c["said"]]
        as_text = {
            "fn": "\n\n".join,
            "inputs": [c["said"]],
            "outputs": [c["conversation"]],
            "api_visibility": "private",
        }
        c["question"].submit(self.respond, asked, outputs, api_name="ask", **answering).then(**as_text)
        c["send"].click(self.respond, asked, outputs, api_visibility="private", **answering).then(**as_text)

        def example(evt, chat, turns, within, said):
            yield from self.respond(evt.value["text"], chat, turns, within, said)

        # Gradio passes the clicked example to the parameter annotated SelectData; the annotation is
        # set as an object because this module's annotations are strings Gradio cannot resolve here.
        example.__annotations__["evt"] = gr.SelectData

        c["chatbot"].example_select(example, asked[1:], outputs, api_visibility="private", **answering).then(**as_text)
        cleared = lambda: ([], [], EMPTY_SOURCES, "", "", [])  # noqa: E731
        c["clear"].click(cleared, None, outputs, api_visibility="private").then(**as_text)
        c["chatbot"].clear(cleared, None, outputs, api_visibility="private").then(**as_text)  # its own bin icon
        # Copies are made in the browser (the clipboard is the reader's), from the text boxes: never markup.
        copy = {"fn": None, "outputs": None, "js": "(text) => window.ragCopy(text)", "api_visibility": "private"}
        c["copy_answer"].click(inputs=[c["copy_box"]], **copy)
        c["copy_all"].click(inputs=[c["conversation"]], **copy)

    def _wire_collection(self, gr, app, s: dict, within) -> None:
        # Changes to the collection run one at a time (ingestion also holds a lock on RAG_HOME).
        writing = {"concurrency_id": "collection", "concurrency_limit": 1}
        listing = [s["table"], s["chosen"]]
        s["add"].click(
            _upload_with_progress(self), [s["files"]], [s["status"], *listing, s["files"]], api_name="upload", **writing
        )
        # Outside the queue: it must run while the upload it stops is still running.
        s["stop"].click(self.collection.cancel, None, None, queue=False, api_name="stop_upload")
        s["drop"].click(self.ask_removal, [s["chosen"]], [s["status"], s["confirm"], s["question"]], api_name="remove")
        s["yes"].click(
            self.remove, [s["chosen"]], [s["status"], *listing, s["confirm"]], api_name="confirm_remove", **writing
        )
        s["no"].click(
            lambda: ("已取消，没有删除任何文件。", gr.update(visible=False)),
            None,
            [s["status"], s["confirm"]],
            api_visibility="private",
        )
        s["refresh"].click(self.refresh, None, listing, api_name="documents")
        app.load(self.refresh, None, listing, api_visibility="private")
        for event in (s["add"].click, s["yes"].click, s["refresh"].click, app.load):
            event(self.scopes, None, [within], api_visibility="private")

    @staticmethod
    def _chat_tab(gr) -> dict:
        c = {"turns": gr.State([]), "said": gr.State([])}
        with gr.Row(elem_id="chat-row"):
            with gr.Column(scale=3, min_width=320, elem_id="chat-column"):
                with gr.Accordion("按受访者筛选 · Only some interviews", open=False, elem_id="scope"):
                    # Custom values: a program may name an interviewee (or part of a name) without listing them first.
                    c["within"] = gr.Dropdown(
                        label="受访者（不选：全部）Interviewees (none: all)",
                        multiselect=True,
                        choices=[],
                        value=[],
                        allow_custom_value=True,
                        elem_id="within",
                    )
                # Messages are HTML made by ui.render (text escaped, own links only): no Markdown, no LaTeX.
                # The examples show in the empty chat, where a person looks first, and go with the first question.
                c["chatbot"] = gr.Chatbot(
                    show_label=False,
                    min_height=300,
                    max_height="70vh",
                    buttons=[],
                    examples=[{"text": q} for q in EXAMPLES],
                    placeholder="**问一个关于访谈的问题** · Ask about the interviews",
                    sanitize_html=True,
                    render_markdown=False,
                    latex_delimiters=[],
                    elem_id="chat",
                )
                c["question"] = gr.Textbox(
                    placeholder="输入问题，按回车 · Type a question and press Enter",
                    show_label=False,
                    elem_id="question",
                )
                with gr.Row(elem_id="chat-buttons"):
                    c["send"] = gr.Button("提问 Ask", variant="primary", min_width=60, elem_id="ask")
                    c["copy_answer"] = gr.Button("复制回答", min_width=60, elem_id="copy-answer")
                    c["copy_all"] = gr.Button("复制对话", min_width=60, elem_id="copy-conversation")
                    c["clear"] = gr.Button("清空", min_width=60, elem_id="clear")
            with gr.Column(scale=2, min_width=320, elem_id="sources-column"):
                gr.Markdown("### 出处 Sources")
                c["sources"] = gr.HTML(EMPTY_SOURCES, elem_id="sources")
                c["copy_box"] = gr.Textbox(
                    label="回答全文（含参考文献）Answer with references",
                    lines=4,
                    interactive=False,
                    buttons=["copy"],
                    elem_id="copy-with-references",
                )
                c["conversation"] = gr.Textbox(visible="hidden", elem_id="conversation-text")
        return c

    @staticmethod
    def _collection_tab(gr, settings) -> dict:
        s = {"table": gr.Dataframe(headers=HEADERS, interactive=False, elem_id="documents")}
        s["files"] = gr.File(
            label=f"上传 txt / md / docx / pdf / 网页 / 扫描图片（每个不超过 {settings.max_file_mb} MB）",
            file_count="multiple",
            # No file_types: Gradio's own refusal is a toast that renders the file's name as HTML;
            # the type is checked when the file is stored, and said as text in the report.
            elem_id="upload",
        )
        with gr.Row():
            s["add"] = gr.Button("上传并索引 Upload and index", variant="primary", elem_id="add")
            s["stop"] = gr.Button("停止读取 Stop reading", elem_id="stop-upload")
            s["refresh"] = gr.Button("刷新 Refresh", elem_id="refresh")
        # Custom values: a program may name a file to remove without listing the documents first.
        s["chosen"] = gr.Dropdown(
            label="选择要删除的文件 Files to remove",
            multiselect=True,
            choices=[],
            allow_custom_value=True,
            elem_id="chosen",
        )
        s["drop"] = gr.Button("删除… Remove…", variant="stop", elem_id="remove")
        with gr.Group(visible=False, elem_id="confirm-removal") as s["confirm"]:
            s["question"] = gr.HTML(elem_id="removal-question")
            with gr.Row():
                s["yes"] = gr.Button("确认删除 Remove", variant="stop", elem_id="confirm-remove")
                s["no"] = gr.Button("取消 Cancel", elem_id="cancel-remove")
        # HTML made by ui.render.text_html: a name or title is escaped, where Markdown would render it.
        s["status"] = gr.HTML(elem_id="collection-status")
        return s


def _turn(question: str, answer: str) -> str:
    """One turn of the conversation as copied: the question, then the answer with its references."""
    return f"问 Q：{question}\n答 A：{answer}"


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
        f"- 回答方式 Answer mode: {mode}\n"
        f"- 向量模型 Embedding model: `{model}` (run by `{settings.embed_backend}`)\n"
        f"- 索引位置 Index: `RAG_HOME` (collection `{settings.collection_name}`, named after the model{where}\n"
        f"- 片段 Chunks: {settings.chunk_size} characters, {settings.chunk_overlap} sentence overlap; "
        f"top-k {settings.top_k}"
    )
