"""The collection as the page and the API manage it: list, add with a report, remove after a preview."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from rag.errors import RagError

HEADERS = [
    "标题 title",
    "受访者 interviewee",
    "刊发 published",
    "文件 file",
    "文章 articles",
    "片段 chunks",
    "索引时间 ingested",
]
BUNDLED_MARK = "〔内置示例 bundled〕"


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
        """Store and index ``uploads``; the run's report as the page shows it, a line per file."""
        report, problems = self.add_files(uploads, on_progress)
        if report is None:
            return "没有可索引的文件。" + "".join(f"\n- ⚠️ {p}" for p in problems)
        done = sum(1 for f in report.files if f.status in ("indexed", "unchanged"))
        lines = [f"已索引 {done} 个文件，新增 {report.added} 个片段（{report.seconds:.1f} 秒）。"]
        lines += [f"- {_outcome(f)}" for f in report.files]
        refused = len(problems) - len(report.failed)
        lines += [f"- ⚠️ {p}" for p in problems[:refused]]  # refused before indexing (size, type, name)
        return "\n".join(lines)

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
            except (OSError, ValueError) as e:  # a name the file system refuses, a full disk
                problems.append(
                    f"{name!r}: cannot be stored ({e.__class__.__name__}: {getattr(e, 'strerror', None) or e})"[:300]
                )
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

    def chosen(self, keys: list[str]) -> list[dict]:
        """The documents named by their shown path (or their source)."""
        wanted = set(keys)
        return [d for d in self.documents() if d["path"] in wanted or d["source"] in wanted]

    def removal_preview(self, keys: list[str]) -> str:
        """What removing ``keys`` would take away, named file by file, as the confirmation asks it."""
        documents = self.chosen(keys)
        if not documents:
            return ""
        named = "、".join(f"《{d['title']}》（{d['path']}，{d['chunks']} 个片段）" for d in documents)
        total = sum(d["chunks"] for d in documents)
        bundled = "其中有内置示例资料，删除后可用 rag ingest 重新索引。" if any(_bundled(d) for d in documents) else ""
        return f"确定删除 {named}？共 {total} 个片段将从资料库中移除。{bundled}"

    def remove(self, keys: list[str]) -> str:
        """Remove documents named by their shown path (or their source); the uploaded copies go too."""
        from ingest.collection import remove_documents

        sources = [d["source"] for d in self.chosen(keys)]
        if not sources:
            return "没有找到这些文件（已删除？请刷新）。"
        n = remove_documents(self.settings, sources, embedder=self.embedder)
        return f"已删除 {len(sources)} 个文件的 {n} 个片段。"


def _outcome(f) -> str:
    """One file's line of the report: what happened to it, and why when it was not indexed."""
    name = Path(f.path).name
    if f.status == "indexed":
        return f"✅ {name}：新增 {f.added} 个片段" + (f"，删除旧片段 {f.deleted} 个" if f.deleted else "")
    if f.status == "unchanged":
        return f"＝ {name}：与已索引的版本相同，未变"
    if f.status == "skipped":
        return f"⏭ {name}：跳过（{f.reason}）"
    reason = f.reason if f.reason.startswith(name) else f"{name}: {f.reason}"
    return f"⚠️ 未索引 not indexed — {reason}"


def _bundled(document: dict) -> bool:
    from ingest.pipeline import BUNDLED_SOURCE

    return document["source"] == BUNDLED_SOURCE


def document_rows(collection: Collection) -> tuple[list[list], list[tuple[str, str]]]:
    """The collection table's rows and the removal list's choices (the bundled collection marked)."""
    rows, choices = [], []
    for d in collection.documents():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(d["ingested_at"])) if d["ingested_at"] else ""
        people = "；".join(dict.fromkeys(p for p in d.get("interviewees", []) if p))
        published = "；".join(
            dict.fromkeys(
                " ".join(x for x in pair if x) for pair in zip(d.get("publishers", []), d.get("dates", [])) if any(pair)
            )
        )
        title = f"{d['title']} {BUNDLED_MARK}" if _bundled(d) else d["title"]
        rows.append([title, people, published, d["path"], len(d["articles"]), d["chunks"], when])
        choices.append((f"{title} — {d['path']}（{d['chunks']} 个片段）", d["path"]))
    return rows, choices


def delete_gradio_copies(paths: list[Path]) -> None:
    """Delete Gradio's temporary copies of uploaded files (ours are in RAG_HOME/uploads now)."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()).resolve()
    for path in paths:
        path = Path(path).resolve()
        if path.is_relative_to(folder):
            path.unlink(missing_ok=True)
            if path.parent != folder and not any(path.parent.iterdir()):
                path.parent.rmdir()
