"""The HTTP API: answers with citations as JSON, retrieval, documents, an OpenAI-compatible chat endpoint.

``rag serve`` serves it alone; ``rag ui`` mounts the chat page beside it (one process, one
model).  Off loopback every /v1 route needs a key from ``RAG_API_KEYS`` (a bearer token).
Answering shares the page's limits: ``RAG_UI_CONCURRENCY`` answers at once, ``RAG_UI_QUEUE_SIZE``
more waiting, beyond that HTTP 429.  Every error is OpenAI's error object (``ui.http_errors``), never a traceback.
Only verified text is ever sent: a streamed chat completion is streamed once the answer is
checked (with an LLM, its unchecked reply never leaves the server).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from pathlib import Path
from typing import Literal

from fastapi import Depends, FastAPI, File, Request, UploadFile
from fastapi.responses import StreamingResponse
from openai.types import CompletionUsage, Model
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from rag import __version__
from rag.references import history_of, with_references
from rag.schema import AnswerOut, DocumentOut, DocumentsOut, PassageOut, PassagesOut, RemovedOut, UploadOut
from rag.text import count_tokens
from ui.http_errors import ApiError, BodyGate, errors_as_json

log = logging.getLogger(__name__)

MODEL_ID = "interview-rag"
MAX_QUESTION_CHARS = 2000
MAX_JSON_BYTES = 256 * 1024


class Turn(BaseModel):
    question: str = Field(max_length=MAX_QUESTION_CHARS)
    answer: str = Field(max_length=20000)


class Scoped(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    history: list[Turn] = Field(default_factory=list, max_length=20)
    sources: list[str] | None = Field(default=None, max_length=100, description="file names or paths")
    interviewees: list[str] | None = Field(default=None, max_length=100, description="whole or part of a name")


class AnswerRequest(Scoped):
    top_k: int | None = Field(default=None, ge=1, le=50)
    format: Literal["json", "markdown"] = "json"


class RetrieveRequest(Scoped):
    k: int = Field(default=5, ge=1, le=50)


class ChatMessage(BaseModel):
    role: str
    content: str | list[dict] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens...: accepted, not used
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    stream: bool = False
    sources: list[str] | None = Field(default=None, max_length=100)
    interviewees: list[str] | None = Field(default=None, max_length=100)


class ModelList(BaseModel):
    """GET /v1/models: OpenAI's list of models (this server answers as one)."""

    object: Literal["list"] = "list"
    data: list[Model]


class Gate:
    """``workers`` at once and ``waiting`` more; beyond that a request is refused with 429."""

    def __init__(self, workers: int, waiting: int) -> None:
        self.slots = asyncio.Semaphore(workers)
        self.limit = workers + waiting
        self.inside = 0

    async def run(self, fn, *args):
        if self.inside >= self.limit:
            raise HTTPException(429, f"busy: {self.limit} questions are being answered or waiting; try again shortly")
        self.inside += 1
        try:
            async with self.slots:
                return await run_in_threadpool(fn, *args)
        finally:
            self.inside -= 1


def _text(content) -> str:
    if isinstance(content, list):  # OpenAI's content parts
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if not all(isinstance(t, str) for t in parts):
            raise ApiError(400, "a text content part needs its text as a string", "messages")
        return "".join(parts)
    return content or ""


def conversation(messages: list[ChatMessage]) -> tuple[str, list[tuple[str, str]]]:
    """The question (the last user message) and the history (user/assistant pairs before it)."""
    turns = [(m.role, _text(m.content)) for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise ApiError(400, "the last message must be a user message with a question", "messages")
    if len(turns[-1][1]) > MAX_QUESTION_CHARS:
        raise ApiError(400, f"the question is longer than {MAX_QUESTION_CHARS} characters", "messages")
    return history_of([(role == "user", text) for role, text in turns])


def create_api(assistant, collection, *, loopback: bool, keys: tuple[str, ...] = ()) -> FastAPI:
    """The API over ``assistant`` (answers) and ``collection`` (ui.collection.Collection: documents)."""
    from fastapi_offline import FastAPIOffline

    from ui.mcp_server import mount_mcp

    mcp = mount_mcp(assistant, collection, _authorizer(keys, loopback), loopback)
    # /docs and /redoc from files the install brings (fastapi-offline), not from a CDN: they work offline.
    app = FastAPIOffline(title="访谈问答 API · Interview Q&A", version=__version__, lifespan=mcp.lifespan)
    mcp.attach(app)
    settings = assistant.settings
    gate = Gate(settings.ui_concurrency, settings.ui_queue_size)
    writing = asyncio.Lock()
    errors_as_json(app, settings)
    app.add_middleware(BodyGate, denial=_denial(keys, loopback), cap=_body_cap(settings))

    shown = _Shown(assistant)

    v1 = {"dependencies": [Depends(_authorizer(keys, loopback))]}

    @app.get("/healthz")
    async def healthz() -> dict:
        """Whether the server is up and how many chunks it holds."""
        return {"status": "ok", "chunks": await run_in_threadpool(assistant.retriever.count), "version": __version__}

    @app.post("/v1/answers", response_model=AnswerOut, response_model_exclude_none=True, **v1)
    async def answers(body: AnswerRequest) -> AnswerOut:
        """The answer with its citations (``format=markdown`` adds the text with numbered references)."""
        history = [(t.question, t.answer) for t in body.history]
        answer = await gate.run(
            lambda: assistant.ask(body.question, history, body.top_k, body.sources, body.interviewees)
        )
        return AnswerOut.of(answer, shown.path, markdown=body.format == "markdown")

    @app.post("/v1/retrieve", **v1)
    async def retrieve(body: RetrieveRequest) -> PassagesOut:
        """The ranked chunks for a question, with their text, place and scores."""
        history = [(t.question, t.answer) for t in body.history]
        hits = await gate.run(
            lambda: assistant.retrieve(body.question, body.k, history, body.sources, body.interviewees)
        )
        return PassagesOut(chunks=[PassageOut.of(h, shown.path) for h in hits])

    _document_routes(app, collection, writing, v1)
    _chat_routes(app, assistant, gate, shown, v1)
    _unknown_route(app)  # last: the routes above match first
    return app


def _denial(keys: tuple[str, ...], loopback: bool):
    """Why a request is refused, from its headers alone: a bearer key when keys are set; without keys,
    loopback only.  (status, message), or None."""

    def denial(headers) -> tuple[int, str] | None:
        given = headers.get("authorization", "")
        token = given[7:].strip() if given.lower().startswith("bearer ") else ""
        if keys:
            if not any(hmac.compare_digest(token.encode(), k.encode()) for k in keys):
                return 401, "a valid API key is needed: Authorization: Bearer <key from RAG_API_KEYS>"
        elif not loopback:
            return 403, "the API answers beyond loopback only with keys: set RAG_API_KEYS"
        return None

    return denial


def _authorizer(keys: tuple[str, ...], loopback: bool):
    """The same check as a route dependency (BodyGate makes it first, before the body)."""
    denial = _denial(keys, loopback)

    def authorize(request: Request) -> None:
        refused = denial(request.headers)
        if refused is not None:
            raise HTTPException(*refused)

    return authorize


class _Shown:
    """A record with its ``source`` as a person is shown it: relative to RAG_HOME or the collection's folder."""

    def __init__(self, assistant) -> None:
        self.assistant = assistant
        self._root: tuple[object, object] = (None, None)  # (the sources set it was made from, root)

    def path(self, source: str) -> str:
        from ingest.collection import collection_root, shown_path

        settings = self.assistant.settings
        sources, _ = self.assistant.retriever.known()
        if self._root[0] is not sources:  # the common folder, once per index version
            self._root = (sources, collection_root(settings, sources))
        return shown_path(source, settings, self._root[1])


def _document_routes(app: FastAPI, collection, writing: asyncio.Lock, v1: dict) -> None:
    @app.get("/v1/documents", response_model=DocumentsOut, **v1)
    async def documents() -> DocumentsOut:
        """The documents in the collection, with their articles and interviewees."""
        rows = await run_in_threadpool(collection.documents)
        return DocumentsOut(documents=[DocumentOut.of(row) for row in rows])

    @app.post("/v1/documents", response_model=UploadOut, **v1)
    async def upload(files: list[UploadFile] = File(...)) -> UploadOut:
        """Upload and index files (.txt .md .docx .pdf .html, scans), with the page's checks; refused files are not kept."""
        import tempfile

        async with writing:
            with tempfile.TemporaryDirectory() as folder:
                uploads = []
                for i, f in enumerate(files):
                    temp = Path(folder) / str(i)  # the sent name is only shown, never a path
                    temp.write_bytes(await f.read())
                    uploads.append((temp, Path(f.filename or "upload").name))
                report, problems = await run_in_threadpool(collection.add_files, uploads)
        indexed = [Path(f.path).name for f in (report.files if report else []) if f.status in ("indexed", "unchanged")]
        return UploadOut(indexed=indexed, added_chunks=report.added if report else 0, refused=problems)

    @app.delete("/v1/documents/{document_id}", response_model=RemovedOut, **v1)
    async def delete(document_id: str) -> RemovedOut:
        """Remove a document (by its id from GET /v1/documents) and its uploaded copy."""
        async with writing:
            rows = await run_in_threadpool(collection.documents)
            row = next((d for d in rows if d["id"] == document_id), None)
            if row is None:
                raise HTTPException(404, f"no document with id {document_id[:40]!r}; GET /v1/documents lists them")
            await run_in_threadpool(collection.remove, [row["source"]])
        return RemovedOut(removed=row["path"], chunks=row["chunks"])


def _chat_routes(app: FastAPI, assistant, gate: Gate, shown: _Shown, v1: dict) -> None:
    from openai.types.chat import ChatCompletion, ChatCompletionMessage
    from openai.types.chat.chat_completion import Choice

    @app.get("/v1/models", **v1)
    async def models() -> ModelList:
        """The one model this server answers as."""
        return ModelList(data=[Model(id=MODEL_ID, object="model", created=0, owned_by="local")])

    @app.post("/v1/chat/completions", response_model=ChatCompletion, response_model_exclude_unset=True, **v1)
    async def chat(body: ChatRequest):
        """OpenAI's chat format: the content is the answer with a references block; ``citations``
        and ``closest`` (on a refusal: the nearest sentences, not an answer) stand at the top level
        of the reply, and of the last chunk when streamed."""
        if body.model not in (None, "", MODEL_ID):
            raise ApiError(
                404,
                f"the model {body.model!r} does not exist; this server answers as {MODEL_ID!r}",
                "model",
                "model_not_found",
            )
        question, history = conversation(body.messages)
        answer = await gate.run(lambda: assistant.ask(question, history, None, body.sources, body.interviewees))
        content = with_references(answer, markdown=True) if answer.found else answer.text
        sent = AnswerOut.of(answer, shown.path).payload()
        sources = {"citations": sent["citations"], "closest": sent["closest"]}
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": MODEL_ID}
        usage = _usage([_text(m.content) for m in body.messages], content)
        if not body.stream:
            message = ChatCompletionMessage(role="assistant", content=content)
            choice = Choice(index=0, message=message, finish_reason="stop")
            return ChatCompletion(**head, object="chat.completion", choices=[choice], usage=usage, **sources)
        return StreamingResponse(_chunks(head, content, usage, sources), media_type="text/event-stream")


def _usage(prompt: list[str], completion: str) -> CompletionUsage:
    """Tokens counted as jieba's words and punctuation marks (rag.text.count_tokens): no model here
    has OpenAI's tokenizer, and an extractive answer spends none; a client's budget still sees the size."""
    prompt_tokens, completion_tokens = sum(count_tokens(t) for t in prompt), count_tokens(completion)
    return CompletionUsage(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )


def _chunks(head: dict, content: str, usage: CompletionUsage, sources: dict):
    """Server-sent events of a checked answer (OpenAI's chunk type): the role, the content line
    by line, then the citations, closest sentences and usage on the last chunk."""
    from openai.types.chat import ChatCompletionChunk
    from openai.types.chat.chat_completion_chunk import Choice, ChoiceDelta

    def event(delta: ChoiceDelta, finish: str | None = None, **extra) -> str:
        choice = Choice(index=0, delta=delta, finish_reason=finish)
        chunk = ChatCompletionChunk(**head, object="chat.completion.chunk", choices=[choice], **extra)
        return f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n"

    yield event(ChoiceDelta(role="assistant", content=""))
    for line in content.splitlines(keepends=True):
        yield event(ChoiceDelta(content=line))
    yield event(ChoiceDelta(), "stop", usage=usage, **sources)
    yield "data: [DONE]\n\n"


def _unknown_route(app: FastAPI) -> None:
    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def unknown(rest: str) -> None:
        """Any other /v1 path: OpenAI's 404, not the chat page's (mounted at / beside the API)."""
        raise ApiError(404, f"no such route: /v1/{rest}", code="unknown_url")


def _body_cap(settings):
    uploads = settings.max_file_mb * 2**20 * 10 + 2**20  # a few files at the size limit, with form overhead
    return lambda path: uploads if path == "/v1/documents" else MAX_JSON_BYTES
