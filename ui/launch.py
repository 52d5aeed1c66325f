"""Starting the chat page: the checks before binding, the login, the bundled collection on first start."""

from __future__ import annotations

import argparse
import asyncio
import hmac
import sys

from rag.config import is_loopback
from rag.errors import RagError
from ui.render import CSS

MAX_LOGIN_DELAY = 3.0  # seconds a failed login waits, at most
MIN_PASSWORD = 8  # characters, as RAG_API_KEYS asks of a key


def _port_free(host: str, port: int) -> bool:
    """Whether uvicorn can bind ``port``: probed as it binds (SO_REUSEADDR), so a port held only by
    connections closing (TIME_WAIT, after a kill) is free, and one another server listens on is not."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _start_checks(host: str, port: int, auth: str | None, page: bool = True) -> str | None:
    """Why the page (or the API alone, ``page=False``) must not start on ``host``:``port`` (one line), or None."""
    user, _, password = (auth or "").partition(":")
    if auth and not (user.strip() and password):
        return "RAG_UI_AUTH must be user:password with a user name and a password that are not empty"
    if auth and len(password) < MIN_PASSWORD:
        return f"the password in RAG_UI_AUTH must be at least {MIN_PASSWORD} characters long, as API keys are"
    if page and not is_loopback(host) and not auth:
        return (
            f"refusing to listen on {host} without a password; set RAG_UI_AUTH=user:password "
            "(or use the default 127.0.0.1)"
        )
    if port and not _port_free(host, port):
        return f"port {port} on {host} is in use (another rag ui?); pass --port N or set RAG_UI_PORT"
    return None


def login_check(auth: str):
    """Gradio's login check for ``RAG_UI_AUTH``: compared in constant time; failures slowed.

    Each failed try waits longer than the one before (0.1 s more, up to ``MAX_LOGIN_DELAY``),
    and failed tries wait one at a time, so guessing runs at a few tries a second at most; a
    right password never waits.  Async, because Gradio calls it on its event loop.
    """
    user, _, password = auth.partition(":")
    failures = 0
    lock = asyncio.Lock()

    async def check(username: str, given: str) -> bool:
        nonlocal failures
        right = hmac.compare_digest(username.encode(), user.strip().encode())
        right &= hmac.compare_digest(given.encode(), password.encode())
        if right:
            return True
        async with lock:
            failures += 1
            await asyncio.sleep(min(MAX_LOGIN_DELAY, 0.1 * failures))
        return False

    return check


def _ready_assistant(settings):
    """The assistant, with the bundled collection indexed first when the index needs it."""
    from tqdm import tqdm

    from ingest.collection import ensure_index, needs_bundled_ingest
    from rag.assistant import Assistant
    from rag.home import pending_sources

    assistant = Assistant(settings)
    if needs_bundled_ingest(settings) or pending_sources(settings.home):
        print(f"Indexing into {settings.home} (the bundled collection, or what a stopped run left) …", file=sys.stderr)
        with tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc="ingest", file=sys.stderr) as bar:

            def on_progress(done: int, total: int, label: str) -> None:
                bar.total, bar.n = total, done
                bar.refresh()

            report = ensure_index(settings, assistant.embedder, on_progress)
        if report is not None:
            print(f"{report.added} chunks added in {report.seconds:.1f} s.", file=sys.stderr)
    assistant.warm_up()
    return assistant


API_PORT = 8765


def main(argv: list[str] | None = None, serve: bool = False) -> int:
    """Start the chat page with the API under /v1 (``rag ui``), or the API alone (``serve``: ``rag serve``)."""
    from rag.config import Settings

    try:
        settings = Settings.from_env()
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from rag.home import setup_logging

    setup_logging(settings.home)
    name = "rag serve" if serve else "rag ui"
    parser = argparse.ArgumentParser(prog=name, description="Start the API." if serve else "Start the chat page.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    default_port = API_PORT if serve else settings.ui_port
    parser.add_argument("--port", type=int, default=default_port, help=f"port (default {default_port})")
    args = parser.parse_args(argv)

    problem = _start_checks(args.host, args.port, settings.ui_auth, page=not serve)
    if serve and not is_loopback(args.host) and not settings.api_keys:
        problem = (
            f"refusing to serve the API on {args.host} without keys; set RAG_API_KEYS=key1,key2 (or use 127.0.0.1)"
        )
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(
            f"warning: listening on {args.host}: anyone who can reach it and holds a password or key can use it",
            file=sys.stderr,
        )
    try:
        assistant = _ready_assistant(settings)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app = _server_app(assistant, settings, args.host, page=not serve)
    import uvicorn

    from ui.running import announce, forget

    print(f"{name}: http://{args.host}:{args.port}/ (API documentation at /docs)", file=sys.stderr)
    record = announce(settings.home, args.host, args.port)  # rag ask of this RAG_HOME answers through it
    try:
        # Open event streams (a browser tab, a Gradio client) must not hold a stop for ever.
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3)
    finally:
        forget(record)
    return 0


def _server_app(assistant, settings, host: str, page: bool):
    """The API over ``assistant``, with the chat page mounted at / when ``page``: one process, one model."""
    from ui.api import create_api
    from ui.app import HEAD, ChatPage

    chat = ChatPage(assistant)
    app = create_api(assistant, chat.collection, loopback=is_loopback(host), keys=settings.api_keys)
    if not page:
        return app
    import gradio as gr

    return gr.mount_gradio_app(
        app,
        chat.build(),
        path="/",
        auth=login_check(settings.ui_auth) if settings.ui_auth else None,
        css=CSS,
        head=HEAD,
        footer_links=["api"],  # the page's own Settings tab is the one place for settings
        max_file_size=f"{settings.max_file_mb}mb",
        show_error=False,
    )
