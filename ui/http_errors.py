"""Errors of the HTTP API as OpenAI sends them, so its clients raise their own exception with our message."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from rag.errors import (
    IndexBusyError,
    IndexMissingError,
    ModelError,
    RagError,
    StorageFullError,
    StoreUnavailable,
    UnknownFilterError,
)

log = logging.getLogger(__name__)

# A fault of the server's side (its model, its store) is a 503, not the client's 400.
_STATUS = {
    UnknownFilterError: 400,
    IndexMissingError: 503,
    ModelError: 503,
    StoreUnavailable: 503,
    IndexBusyError: 409,
    StorageFullError: 507,
}
# OpenAI's error types by status, so its clients raise the matching exception with our message.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
RETRY_AFTER_SECONDS = 2


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    """An error as OpenAI sends it: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ApiError(HTTPException):
    """An HTTP error with OpenAI's ``param`` and ``code`` (``model_not_found``...)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(status, message)
        self.param, self.code = param, code


def errors_as_json(app: FastAPI, settings) -> None:
    """Every error of ``app`` as one JSON error object; a failure nobody foresaw is logged, never shown."""

    def public(message: str) -> str:
        return message.replace(str(settings.home), "RAG_HOME")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        body = error_body(e.status_code, public(str(e.detail)), getattr(e, "param", None), getattr(e, "code", None))
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if e.status_code == 429 else None
        return JSONResponse(body, status_code=e.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(error_body(400, f"{where}: {first.get('msg', 'invalid request')}", where or None), 400)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, e: RagError):
        status = _STATUS.get(type(e), 400)
        param = "interviewees" if isinstance(e, UnknownFilterError) else None
        return JSONResponse(error_body(status, public(str(e)), param), status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        log.exception("the API failed on %s", request.url.path)
        return JSONResponse(error_body(500, f"internal error ({e.__class__.__name__}); see RAG_HOME/rag.log"), 500)


class BodyGate:
    """ASGI middleware for ``/v1`` and ``/mcp``: the key is checked before any byte of the body is
    read, and the body's size is counted while it is read, chunked or not, not only announced.

    ``denial(headers)`` gives (status, message) for a request to refuse, or None; ``cap(path)`` the
    most bytes a body to ``path`` may have.  Past the cap the reading stops with 413, whether the
    request said its length (refused at once) or not (refused at the byte past it).
    """

    def __init__(self, app, denial, cap) -> None:
        self.app, self.denial, self.cap = app, denial, cap

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(("/v1/", "/mcp")):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self.denial(headers)
        cap = self.cap(scope["path"])
        announced = headers.get("content-length", "")
        if refused is None and announced.isdigit() and int(announced) > cap:
            refused = (413, f"the request is {announced} bytes, over the {cap} allowed")
        if refused is not None:
            status, message = refused
            return await JSONResponse(error_body(status, message), status_code=status)(scope, receive, send)
        read, over, told = 0, False, False

        async def counted():
            nonlocal read, over
            message = await receive()
            read += len(message.get("body", b""))
            if read > cap:  # reading stops here; whatever the app makes of it, the answer is a 413
                over = True
                return {"type": "http.disconnect"}
            return message

        async def too_large():
            nonlocal told
            told = True
            reply = JSONResponse(error_body(413, f"the request is over the {cap} bytes allowed"), status_code=413)
            await send({"type": "http.response.start", "status": 413, "headers": reply.raw_headers})
            await send({"type": "http.response.body", "body": reply.body})

        async def answer(message):
            if not over:
                return await send(message)
            if message["type"] == "http.response.start" and not told:
                await too_large()

        await self.app(scope, counted, answer)
        if over and not told:  # the app took the stop for a client gone and said nothing
            await too_large()
