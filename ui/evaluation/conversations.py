"""Conversation files scored turn by turn (``rag eval tests/data/conversation_dev.jsonl``).

One JSON object a line: ``id``, ``type`` and ``turns``; each turn has ``q``, ``found`` and the
checks it names (``interviewees``, ``who``, ``only``, ``phrases``/``min_phrases``,
``min_people``, ``no_repeat``, ``or_attributed``/``not_who``; tests/data/README.md).  Earlier
turns are passed as history (question, answer text).  A conversation passes when every turn
does.  Each system answers every conversation: ``ours`` (an answerer per question kind) and,
beside it, the single policy that reads every question as a factoid, with the learned scorer
and with the word-overlap rules.
"""

from __future__ import annotations

import json
import re
import statistics
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

from rag.config import ANSWERERS

SYSTEMS = ("ours", *ANSWERERS)  # the kinds of question told apart; each answerer alone


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def is_conversation_file(path: Path) -> bool:
    """Whether ``path`` is a conversation file (its first record has ``turns``)."""
    if Path(path).suffix != ".jsonl":
        return False
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            return "turns" in json.loads(line)
    return False


def normal(text: str) -> str:
    """NFKC, without white space and quotation marks: how phrases are compared."""
    return re.sub(r"[\s“”‘’\"'「」『』]", "", unicodedata.normalize("NFKC", text))


def check_turn(turn: dict, answer, said: set[str]) -> list[str]:
    """What is wrong with ``answer`` to ``turn`` (empty: the turn passes); ``said``: quotes of earlier turns."""
    people = [c.interviewee for c in answer.citations]
    if not turn["found"]:
        if not answer.found:
            return []
        if turn.get("or_attributed"):
            bad = [p for p in people if any(n in p for n in turn.get("not_who", []))]
            named = all(f"《{c.title}》" in answer.text for c in answer.citations)
            if answer.citations and not bad and named:
                return []
        return ["answered, should be refused"]
    if not answer.found:
        return ["refused"]
    if not answer.citations:
        return ["no citations"]
    problems = []
    who = turn.get("who", [])
    if who and turn.get("only", True):
        strangers = sorted({p for p in people if not any(n in p for n in who)})
        if strangers:
            problems.append(f"cites others: {strangers}")
    if "min_people" in turn:
        covered = {n for n in who if any(n in p for p in people)}
        if len(covered) < turn["min_people"]:
            problems.append(f"{len(covered)} of {turn['min_people']} people")
    if turn.get("phrases"):
        text = normal(answer.text)
        carried = [p for p in turn["phrases"] if normal(p) in text]
        if len(carried) < turn.get("min_phrases", 1):
            problems.append(f"{len(carried)} of {turn.get('min_phrases', 1)} phrases")
    if turn.get("no_repeat") and any(c.quote in said for c in answer.citations):
        problems.append("repeats an earlier quote")
    return problems


def run_conversations(assistants: dict, conversations: list[dict], on_progress=None) -> dict:
    """Every conversation asked of every system; pass counts per kind, per-turn rows and latencies."""
    from rag.question import Question

    rows, latencies, by_kind = [], defaultdict(list), defaultdict(lambda: defaultdict(list))
    for i, conversation in enumerate(conversations):
        row = {"id": conversation["id"], "type": conversation["type"], "systems": {}}
        for name, assistant in assistants.items():
            history, said, passed, turns = [], set(), True, []
            for turn in conversation["turns"]:
                began = time.perf_counter()
                answer = assistant.ask(turn["q"], history=history, interviewees=turn.get("interviewees"))
                seconds = time.perf_counter() - began
                latencies[name].append(seconds)
                by_kind[name][assistant.kind_of(Question.parse(turn["q"], history))].append(seconds)
                problems = check_turn(turn, answer, said)
                passed = passed and not problems
                turns.append({"q": turn["q"], "found": answer.found, "problems": problems, "answer": answer.text})
                history.append((turn["q"], answer.text))
                said |= {c.quote for c in answer.citations}
            row["systems"][name] = {"passed": passed, "turns": turns}
        rows.append(row)
        if on_progress:
            on_progress(i + 1, len(conversations), "conversations")
    kinds = sorted({r["type"] for r in rows})
    table = {
        name: {
            "all": (sum(r["systems"][name]["passed"] for r in rows), len(rows)),
            **{
                kind: (
                    sum(r["systems"][name]["passed"] for r in rows if r["type"] == kind),
                    sum(1 for r in rows if r["type"] == kind),
                )
                for kind in kinds
            },
        }
        for name in assistants
    }
    speed = {name: _percentiles(values) for name, values in latencies.items() if values}
    per_kind = {name: {k: _percentiles(v) for k, v in sorted(kinds_.items())} for name, kinds_ in by_kind.items()}
    return {
        "conversations": len(rows),
        "kinds": kinds,
        "passed": table,
        "speed": speed,
        "speed_per_kind": per_kind,
        "rows": rows,
    }


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "questions": len(values),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
    }


def format_conversations(result: dict, source: str = "") -> str:
    """The pass counts as a Markdown table, one row per kind, then the failures of ``ours``."""
    names = list(result["passed"])
    lines = [f"conversations: {result['conversations']}{f' from {source}' if source else ''}", ""]
    lines.append("| kind | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for kind in [*result["kinds"], "all"]:
        cells = " | ".join("{}/{}".format(*result["passed"][n][kind]) for n in names)
        lines.append(f"| {'**all**' if kind == 'all' else kind} | {cells} |")
    lines.append("")
    lines.append(
        "ask() latency: "
        + "; ".join(f"{n} p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms" for n, s in result["speed"].items())
    )
    for name, kinds in result.get("speed_per_kind", {}).items():
        if name == names[0]:
            lines.append(
                f"{name} per question kind: "
                + "; ".join(
                    f"{k} ({s['questions']}) p50 {s['p50_ms']} / p95 {s['p95_ms']} ms" for k, s in kinds.items()
                )
            )
    failed = [r for r in result["rows"] if not r["systems"][names[0]]["passed"]]
    if failed:
        lines += ["", f"not passed by {names[0]}:"]
        for r in failed:
            for t in r["systems"][names[0]]["turns"]:
                if t["problems"]:
                    lines.append(f"- {r['id']} ({r['type']}) {t['q']} -> {'; '.join(t['problems'])}")
    return "\n".join(lines)


def run(
    path: Path,
    home: Path | None = None,
    on_progress=None,
    systems: tuple[str, ...] = SYSTEMS,
    corpus: list[Path] | None = None,
) -> dict:
    """Index ``corpus`` (the bundled collection by default; once per ``home``), then score ``path`` with each system."""
    import tempfile
    from dataclasses import replace

    from ingest.pipeline import BUNDLED_COLLECTION, ingest
    from rag.assistant import Assistant
    from rag.config import Settings
    from rag.embeddings import load_embedder

    base = Settings.from_env()
    settings = replace(base, home=Path(home) if home else Path(tempfile.mkdtemp(prefix="rag-eval-")) / "home")
    embedder = load_embedder(settings)
    ingest(list(corpus or [BUNDLED_COLLECTION]), settings, embedder=embedder)
    assistants = {}
    for name in systems:
        answerer = "rules" if name == "rules" else "learned"
        assistants[name] = Assistant(replace(settings, answerer=answerer), embedder=embedder, kinds=name == "ours")
        assistants[name].warm_up()
    return run_conversations(assistants, load(path), on_progress)
