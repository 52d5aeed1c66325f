"""The ``rag`` command: ``rag ingest``, ``ask``, ``chat``, ``ui``, ``eval`` -- above the packages it drives."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rag.config import ANSWERERS, Settings
from rag.errors import RagError
from rag.home import setup_logging


def _peak_memory_mb() -> float:
    import resource  # POSIX only: imported where it is used

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from ingest.pipeline import ingest

    bar = tqdm(
        total=0, unit="B", unit_scale=True, unit_divisor=1024, desc="ingest", disable=args.quiet, file=sys.stderr
    )

    def on_progress(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(Path(label).name if label else "", refresh=False)
        bar.refresh()

    try:
        report = ingest([Path(p) for p in args.paths] or None, settings, prune=args.prune, on_progress=on_progress)
    finally:
        bar.close()
    read = report.count("indexed") + report.count("unchanged")
    print(
        f"files: {read} read, {report.count('skipped')} skipped, {len(report.failed)} failed | "
        f"chunks: {report.added} added, {report.deleted} removed, {report.unchanged} unchanged | "
        f"{report.seconds:.1f} s, peak memory {_peak_memory_mb():.0f} MB"
    )
    for outcome in report.files:
        if outcome.status in ("failed", "skipped"):
            print(f"  {outcome.status}: {outcome.path}: {outcome.reason}")
    return 1 if report.failed else 0


def format_answer(answer) -> str:
    """The answer and its citations as plain text for a terminal or a document.

    Escape sequences and bidi overrides from a document are shown as codes, never sent to the terminal.
    """
    from ui.render import visible

    lines = [answer.text]
    if answer.notice:
        lines.insert(0, f"({answer.notice})")
    if answer.closest:
        lines.append("最接近的句子（并非答案）Closest sentences, not an answer:")
    for mark, c in [(f"[{c.n}]", c) for c in answer.citations] + [(f"({c.n})", c) for c in answer.closest]:
        who = "".join(
            f" · {x}" for x in (c.speaker or c.interviewee, " ".join(y for y in (c.publisher, c.date) if y)) if x
        )
        page = f" 第{c.page}页" if c.page else ""
        lines.append(
            f"{mark} 《{c.title}》{who} · {Path(c.source).name}{page} 第{c.paragraph}段 (chars {c.start}-{c.end})"
        )
        lines.append(f"    “{c.quote}”")
    return "\n".join(visible(line) for line in lines)


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    import json

    if not args.local and (code := _ask_through_server(args, settings)) is not None:
        return code
    from rag.embeddings import load_embedder

    embedder = load_embedder(settings)
    embedder.load_in_background()  # the model loads while the rest of the answering code is imported
    from rag.assistant import Assistant

    assistant = Assistant(settings, embedder)
    answer = assistant.ask(args.question, top_k=args.top_k, sources=args.source, interviewees=args.interviewee)
    if args.json:
        from rag.schema import AnswerOut

        print(json.dumps(AnswerOut.of(answer).payload(), ensure_ascii=False, indent=2))
    else:
        print(format_answer(answer))
    return 0 if answer.found else 3


def _ask_through_server(args: argparse.Namespace, settings: Settings) -> int | None:
    """``rag ask`` answered by the running server of this RAG_HOME (its model is loaded); None: none is."""
    import json

    from rag.schema import AnswerOut
    from ui.running import Refused, ask_server, server_of

    url = server_of(settings.home)
    if url is None:
        return None
    payload = {"question": args.question, "top_k": args.top_k, "sources": args.source, "interviewees": args.interviewee}
    try:
        data = ask_server(url, payload, settings.api_keys[0] if settings.api_keys else None)
    except Refused as e:
        raise RagError(str(e)) from e
    if data is None:
        return None
    print(f"(answered by the server at {url}; --local answers without it)", file=sys.stderr)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(format_answer(AnswerOut.model_validate(data).answer()))
    return 0 if data["found"] else 3


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    """A conversation in the terminal: one question a line, follow-ups read with the turns before."""
    from rag.assistant import Assistant

    assistant = Assistant(settings)
    interactive = sys.stdin.isatty()
    if interactive:
        print("一行一个问题；/new 开始新的对话；Ctrl-D 结束。One question a line; /new starts over; Ctrl-D ends.")
    turns: list[tuple[str, str]] = []
    while True:
        try:
            line = input("问 > " if interactive else "")
        except EOFError:
            return 0
        if line.strip() == "/new":
            turns = []
            print("（新的对话 new conversation）\n")
            continue
        if not line.strip():
            continue
        answer = assistant.ask(
            line, history=turns, top_k=args.top_k, sources=args.source, interviewees=args.interviewee
        )
        if answer.found:
            turns.append((answer.question, answer.text))
        print(format_answer(answer) + "\n", flush=True)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from tqdm import tqdm

    from ui.evaluation.conversations import is_conversation_file
    from ui.evaluation.evaluate import run
    from ui.evaluation.report import format_report, plot_hit_at_k

    bar = tqdm(total=0, desc="eval", disable=args.quiet, file=sys.stderr)

    def on_progress(done: int, total: int, label: str) -> None:
        bar.total, bar.n = total, done
        bar.set_description_str(f"eval: {label}" if label == "questions" else "eval: ingest")
        bar.refresh()

    if is_conversation_file(Path(args.questions)):
        return _eval_conversations(args, on_progress, bar)
    try:
        result = run(
            Path(args.questions),
            corpus=[Path(p) for p in args.corpus] or None,
            sample=args.sample,
            seed=args.seed,
            holdout=args.holdout,
            home=Path(args.home) if args.home else None,
            baselines=not args.no_baselines,
            on_progress=on_progress,
            answerers=tuple(args.answerer),
            part=args.part,
        )
    finally:
        bar.close()
    print(format_report(result))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
        try:
            plot_hit_at_k(result, out.with_suffix(".png"))
            print(f"wrote {out} and {out.with_suffix('.png')}")
        except ImportError:
            print(f"wrote {out}; the hit@k plot needs matplotlib: pip install -e '.[eval]'")
    return 0


def _add_eval(sub) -> None:
    """``rag eval``'s arguments."""
    p = sub.add_parser("eval", help="measure retrieval, answers and speed on a question set, beside baselines")
    p.add_argument(
        "questions", help="JSONL in the project's format, a conversation file (JSONL of turns), or SQuAD-style JSON"
    )
    p.add_argument("--corpus", nargs="*", default=[], help="files the JSONL questions are about (default: bundled)")
    p.add_argument("--sample", type=int, default=None, help="ask a random sample of this many questions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--holdout",
        type=int,
        default=0,
        help="SQuAD sets: leave this many articles out; their questions must be refused",
    )
    p.add_argument("--home", default=None, help="index folder (default: a fresh temporary one)")
    p.add_argument("--json", default=None, help="write the figures here, and the hit@k plot beside it (.png)")
    p.add_argument("--no-baselines", action="store_true", help="skip the LangChain-default baseline")
    p.add_argument(
        "--answerer",
        nargs="+",
        choices=ANSWERERS,
        default=list(ANSWERERS),
        help="extractive answerers to compare (default both: the learned scorer and the word-overlap rules)",
    )
    p.add_argument(
        "--part",
        choices=("fit", "calibrate", "test"),
        default=None,
        help="SQuAD sets: only this part of the answer scorer's split by article, its held-out articles left out",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval)


def _eval_conversations(args: argparse.Namespace, on_progress, bar) -> int:
    """``rag eval`` of a conversation file: pass counts per kind, beside the single factoid policy."""
    import json

    from ui.evaluation.conversations import SYSTEMS, format_conversations
    from ui.evaluation.conversations import run as run_conversations

    systems = SYSTEMS if not args.no_baselines else SYSTEMS[:1]
    try:
        result = run_conversations(
            Path(args.questions),
            Path(args.home) if args.home else None,
            on_progress,
            systems,
            corpus=[Path(p) for p in args.corpus] or None,
        )
    finally:
        bar.close()
    print(format_conversations(result, args.questions))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag", description="Question answering with citations over interview collections."
    )
    from rag import __version__

    parser.add_argument("--version", action="version", version=f"rag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="chunk and embed files into the index (default: the bundled collection)")
    p.add_argument("paths", nargs="*", help="files or folders (.txt .md .docx .pdf .html, scans .png .jpg .tif)")
    p.add_argument("--prune", action="store_true", help="remove what was ingested from files that no longer exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("ask", help="answer a question from the index, with citations")
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=None, help="how many chunks to read (default RAG_TOP_K)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--local", action="store_true", help="answer here even when a rag serve/ui of RAG_HOME is running")
    _add_filters(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="ask one question a line from the terminal, follow-ups included")
    p.add_argument("--top-k", type=int, default=None, help="how many chunks to read (default RAG_TOP_K)")
    _add_filters(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("mcp", help="serve the MCP tools (ask, retrieve, documents) over stdio")
    p.set_defaults(func=cmd_mcp)

    _add_eval(sub)

    # "rag ui ..." and "rag serve ..." are handed to ui.launch.main whole (see main); listed here for --help.
    sub.add_parser("ui", help="start the chat page and the API under /v1 (ingests the bundled collection if needed)")
    sub.add_parser("serve", help="start the HTTP API alone: /v1/answers, /v1/chat/completions, ... (docs at /docs)")
    return parser


def cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    """The MCP server over stdio: a desktop client (Claude Desktop, an IDE) starts it and talks to it."""
    from rag.assistant import Assistant
    from ui.collection import Collection
    from ui.mcp_server import build_server

    assistant = Assistant(settings)
    assistant.warm_up()  # the model loads before the client's first call, not during it
    build_server(assistant, Collection(settings, assistant.embedder)).run("stdio")
    return 0


def _add_filters(p: argparse.ArgumentParser) -> None:
    """--interviewee and --source, as ``ask()``'s ``interviewees`` and ``sources``."""
    p.add_argument(
        "--interviewee",
        action="append",
        metavar="NAME",
        help="answer only from this interviewee's interviews (whole or part of a name; repeatable)",
    )
    p.add_argument(
        "--source",
        action="append",
        metavar="FILE",
        help="answer only from this file (its name, path or path's ending; repeatable)",
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rag`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["ui"], ["serve"]):
        from ui.launch import main as launch

        return launch(argv[1:], serve=argv[0] == "serve")
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        setup_logging(settings.home)
        return args.func(args, settings)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # rag ask ... | head -1: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
