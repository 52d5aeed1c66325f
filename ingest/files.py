"""Which files a run reads: those given (folders walked), less those found unchanged cheaply.

Every file given gets an outcome in the run's report, read or not (``collect_files``).

A run used to parse, chunk and check chunk by chunk every file it was given before finding it
unchanged (472 s for 632 unchanged files at a million chunks).  After a file is indexed whole,
``remember`` records its size, SHA-256 of its bytes, source and chunk count in
``RAG_HOME/<collection>.files.json``; the next run takes a file as unchanged when its size and
hash match that record (its modification time is not trusted: a copy or a checkout moves it),
the chunking settings are the same, no run left it half-written, the record manager still holds
as many chunks of it (a document removed since is read again) and as many chunks in all as
Chroma does.  Anything else, and the file is read as before.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ingest.parse import SUPPORTED_SUFFIXES
from ingest.storage import record_manager
from rag.config import Settings


@dataclass
class FileOutcome:
    """What happened to one file."""

    path: str
    status: str  # "indexed", "unchanged", "failed", "skipped"
    reason: str = ""
    added: int = 0
    deleted: int = 0
    unchanged: int = 0
    moved: int = 0  # unchanged chunks whose offsets or paragraph numbers were updated in place


def collect_files(paths: Iterable[Path]) -> tuple[list[Path], list[FileOutcome]]:
    """The supported files among ``paths`` (folders are walked), and an outcome for every other
    file given: nothing is left out of the run's report without a word."""
    files: list[Path] = []
    skipped: list[FileOutcome] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                parts = child.relative_to(path).parts
                if any(part.startswith(".") for part in parts[:-1]):
                    continue  # inside a hidden folder (.git, .rag): the folder is reported once
                if parts[-1].startswith("."):
                    skipped.append(
                        FileOutcome(str(child), "skipped", "hidden " + ("folder" if child.is_dir() else "file"))
                    )
                elif child.is_file():
                    _sort(child, files, skipped)
        elif path.is_file():
            _sort(path, files, skipped)
        else:
            skipped.append(FileOutcome(str(path), "failed", "no such file or folder"))
    seen: set[str] = set()
    skipped = [s for s in skipped if not (s.path in seen or seen.add(s.path))]
    return list(dict.fromkeys(files)), skipped


def _sort(path: Path, files: list[Path], skipped: list[FileOutcome]) -> None:
    if path.suffix.lower() in SUPPORTED_SUFFIXES:
        files.append(path.resolve())
    else:
        skipped.append(FileOutcome(str(path), "skipped", f"unsupported type {path.suffix or '(none)'}"))


def _path(settings: Settings) -> Path:
    return settings.home / f"{settings.collection_name}.files.json"


def _load(settings: Settings) -> dict[str, dict]:
    try:
        return json.loads(_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or torn: every file is read
        return {}


def digest(path: Path) -> str:
    """SHA-256 of the file's bytes (about 1 GB/s: far cheaper than reading it as text)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def to_read(
    settings: Settings, files: list[Path], pending: frozenset[str]
) -> tuple[list[FileOutcome], list[Path], dict[Path, str]]:
    """(the outcomes of the files unchanged since they were indexed, the files to read, the hash of
    each of those as it is now -- recorded by ``remember`` once the file is in whole)."""
    known = _load(settings)
    records = record_manager(settings) if known else None
    if records is None or not _agree(settings, records):
        return [], files, {path: digest(path) for path in files}
    chunking = [settings.chunk_size, settings.chunk_overlap]
    same, rest = [], []
    for path in files:
        entry = known.get(str(path))
        try:
            unchanged = (
                entry is not None
                and entry["size"] == path.stat().st_size
                and entry["chunking"] == chunking
                and entry["source"] not in pending
                and entry["sha256"] == digest(path)
                and len(records.list_keys(group_ids=[entry["source"]])) == entry["chunks"]
            )
        except OSError:
            unchanged = False
        if unchanged:
            same.append(FileOutcome(entry["source"], "unchanged", unchanged=entry["chunks"]))
        else:
            rest.append(path)
    return same, rest, {path: digest(path) for path in rest}


def _agree(settings: Settings, records) -> bool:
    """Whether Chroma and the record manager hold as many chunks (a run cut short between their
    writes leaves them unequal, and then every file is read: the run heals it)."""
    from ingest.records import record_count
    from rag.store import chroma_client

    try:
        return chroma_client(settings).get_collection(settings.collection_name).count() == record_count(records)
    except Exception:  # no collection yet
        return False


def remember(settings: Settings, indexed: list[tuple[Path, str, int, str]]) -> None:
    """Record files indexed whole: (path, source, chunks, SHA-256 of the bytes read).  A file whose
    bytes changed since they were read (its hash now differs) is not recorded: the next run reads it."""
    if not indexed:
        return
    known = _load(settings)
    chunking = [settings.chunk_size, settings.chunk_overlap]
    for path, source, chunks, read in indexed:
        try:
            size = path.stat().st_size
            if digest(path) != read:
                known.pop(str(path), None)
                continue
        except OSError:
            known.pop(str(path), None)
            continue
        known[str(path)] = {
            "size": size,
            "sha256": read,
            "source": source,
            "chunks": chunks,
            "chunking": chunking,
        }
    target = _path(settings)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(known, ensure_ascii=False), encoding="utf-8")
    partial.replace(target)
