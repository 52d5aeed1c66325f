"""The assistant as an MCP server (the official ``mcp`` SDK): tools to ask, retrieve and list documents.

``rag mcp`` speaks it over stdio (for a desktop client that starts it); ``rag serve`` and ``rag ui``
serve it over streamable HTTP at ``/mcp``, behind the same keys as ``/v1``.  ``ask`` returns what
``rag.ask`` returns: the text with [n] markers, whether the collection holds an answer, the
citations (verbatim quote, file, title, interviewee, paragraph, offsets) and, on a refusal, the
closest sentences -- as structured content, and as text for clients that read only text.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from rag.references import with_references
from rag.schema import AnswerOut, PassageOut

INSTRUCTIONS = (
    "Answers questions about a collection of Chinese interview articles with verbatim, checkable "
    "citations. Call `ask` with the question (Chinese or English); `found` is false when the "
    "collection does not say. Limit with `interviewees` (whole or part of a name) or `sources` (file "
    "names); `documents` lists what the collection holds; `retrieve` gives the ranked passages."
)


@contextlib.contextmanager
def _said():
    """A refusal of the request (an unknown interviewee, no index yet) as the tool's error message."""
    from mcp.server.mcpserver.exceptions import ToolError

    from rag.errors import RagError

    try:
        yield
    except RagError as e:
        raise ToolError(str(e)) from e


def build_server(assistant, collection=None):
    """An ``MCPServer`` over ``assistant`` (and ``collection``, for the document list)."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("interview-rag", instructions=INSTRUCTIONS)

    @server.tool()
    def ask(question: str, interviewees: list[str] | None = None, sources: list[str] | None = None) -> dict[str, Any]:
        """Answer a question from the collection: text with [n] markers, found, citations, closest."""
        with _said():
            answer = assistant.ask(question, sources=sources, interviewees=interviewees)
        sent = AnswerOut.of(answer).payload()
        return {**sent, "with_references": with_references(answer) if answer.found else answer.text}

    @server.tool()
    def retrieve(
        question: str, k: int = 5, interviewees: list[str] | None = None, sources: list[str] | None = None
    ) -> dict[str, Any]:
        """The passages ranked for a question, with their text, file, title, interviewee and offsets."""
        with _said():
            hits = assistant.retrieve(question, k=k, sources=sources, interviewees=interviewees)
        return {"passages": [PassageOut.of(h).model_dump(mode="json") for h in hits]}

    @server.tool()
    def documents() -> dict[str, Any]:
        """The documents of the collection: file, title, and each article's title and interviewee."""
        rows = collection.documents() if collection is not None else []
        return {
            "documents": [
                {
                    "file": d["file"],
                    "title": d["title"],
                    "articles": [{"title": t, "interviewee": p} for t, p in zip(d["articles"], d["interviewees"])],
                }
                for d in rows
            ]
        }

    return server


@dataclass
class McpMount:
    """The MCP server's streamable-HTTP route and the lifespan that runs its session manager."""

    server: Any
    routes: list
    authorize: Any

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        async with self.server.session_manager.run():
            yield

    def attach(self, app) -> None:
        """``/mcp`` on ``app``, behind the same check as every ``/v1`` route (a key, or loopback)."""
        from fastapi import Request
        from fastapi.responses import JSONResponse
        from starlette.exceptions import HTTPException

        from ui.http_errors import error_body

        app.router.routes.extend(self.routes)

        @app.middleware("http")
        async def keys_for_mcp(request: Request, call_next):
            if request.url.path == "/mcp" or request.url.path.startswith("/mcp/"):
                try:
                    self.authorize(request)
                except HTTPException as e:
                    return JSONResponse(error_body(e.status_code, str(e.detail)), status_code=e.status_code)
            return await call_next(request)


def mount_mcp(assistant, collection, authorize, loopback: bool) -> McpMount:
    """The MCP server over streamable HTTP at ``/mcp`` (stateless: every request stands alone).

    On loopback without keys, the SDK's DNS-rebinding protection keeps web pages of other sites
    out; beyond loopback the keys do, whatever Host a proxy sends.
    """
    from mcp.server.transport_security import TransportSecuritySettings

    server = build_server(assistant, collection)
    security = None if loopback else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = server.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, transport_security=security
    )
    return McpMount(server, list(app.routes), authorize)
