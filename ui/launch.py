"""Starting the chat page: the checks before binding, the login, the bundled collection on first start."""

from __future__ import annotations

import argparse
import asyncio
import hmac
import sys

from rag.config import is_loopback
from rag.errors import RagError
from ui.app import build_app
from ui.render import CSS

MAX_LOGIN_DELAY = 3.0  # seconds a failed login waits, at most


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _start_checks(host: str, port: int, auth: str | None) -> str | None:
    """Why the page must not start on ``host``:``port`` (one line), or None."""
    user, _, password = (auth or "").partition(":")
    if auth and not (user.strip() and password):
        return "RAG_UI_AUTH must be user:password with a user name and a password that are not empty"
    if not is_loopback(host) and not auth:
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

    assistant = Assistant(settings)
    if needs_bundled_ingest(settings):
        print(f"Indexing the bundled collection into {settings.home} …", file=sys.stderr)
        with tqdm(total=0, unit="text", desc="ingest", file=sys.stderr) as bar:

            def on_progress(done: int, total: int, label: str) -> None:
                bar.total, bar.n = total, done
                bar.refresh()

            report = ensure_index(settings, assistant.embedder, on_progress)
        if report is not None:
            print(f"{report.added} chunks added in {report.seconds:.1f} s.", file=sys.stderr)
    assistant.warm_up()
    return assistant


def main(argv: list[str] | None = None) -> int:
    """Start the chat page (``rag ui`` and ``python -m ui``)."""
    from rag.config import Settings

    try:
        settings = Settings.from_env()
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from ui.cli import setup_logging

    setup_logging(settings)
    parser = argparse.ArgumentParser(prog="rag ui", description="Start the chat page.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=settings.ui_port, help="port (default RAG_UI_PORT or 7860)")
    args = parser.parse_args(argv)

    problem = _start_checks(args.host, args.port, settings.ui_auth)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(
            f"warning: listening on {args.host}: anyone who can reach it and knows RAG_UI_AUTH can use it",
            file=sys.stderr,
        )
    try:
        assistant = _ready_assistant(settings)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app = build_app(assistant)
    app.launch(
        server_name=args.host,
        server_port=args.port,
        auth=login_check(settings.ui_auth) if settings.ui_auth else None,
        css=CSS,
        max_file_size=f"{settings.max_file_mb}mb",
        show_error=False,
    )
    return 0
