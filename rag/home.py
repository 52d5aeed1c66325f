"""RAG_HOME kept private: the index holds the text of every document."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def private_home(home: Path) -> Path:
    """``home`` made if missing, readable by its owner only (0700), and tightened if it was not.

    The index holds the text of every document, so other local users must not read it; a home
    an older version made 0755 is made 0700, and its own files 0600, with a line in the log.
    """
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if home.stat().st_mode & 0o077:
            home.chmod(0o700)
            log.warning("RAG_HOME %s was open to other users; it is now readable by its owner only", home)
        tighten(home, recurse=False)
    except OSError:  # a read-only home, a folder of another user: it stays as it is
        pass
    return home


def tighten(folder: Path, recurse: bool = True) -> None:
    """Files in ``folder`` open to other users made 0600."""
    files = folder.rglob("*") if recurse else folder.iterdir()
    loose = [p for p in files if p.is_file() and not p.is_symlink() and p.stat().st_mode & 0o077]
    for path in loose:
        path.chmod(0o600)
    if loose:  # most are the store's own new files, made with the process's umask: not worth a warning
        log.debug("%d files under %s made readable by their owner only", len(loose), folder)


# A document being written is journaled in RAG_HOME/pending from before its first chunk is
# stored (for an upload, from before the file is kept) until its last chunk, its records and its
# sentence vectors are in.  Readers leave journaled sources out, so a document is listed and
# answered from only once whole; the next ingestion run completes (or removes) what a kill left.
PENDING = "pending"
_seen: dict[Path, tuple[tuple[str, ...], frozenset[str]]] = {}


def _entry(home: Path, source: str) -> Path:
    import hashlib

    return home / PENDING / f"{hashlib.sha256(source.encode('utf-8', 'surrogatepass')).hexdigest()[:24]}.json"


def begin_pending(home: Path, source: str) -> None:
    """Journal ``source`` as being written (a crash leaves the entry for the next run)."""
    import json

    entry = _entry(home, source)
    entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = entry.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps({"source": source}, ensure_ascii=False), encoding="utf-8")
    partial.replace(entry)


def end_pending(home: Path, source: str) -> None:
    """``source`` is whole: readers see it."""
    _entry(home, source).unlink(missing_ok=True)


def pending_sources(home: Path) -> frozenset[str]:
    """The sources being written now, or left half-written by a run that was stopped.

    An entry's name is a hash of its source, so the folder's listing says whether anything
    changed; the entries are read again only then.
    """
    import json

    folder = home / PENDING
    try:
        names = tuple(sorted(n for n in os.listdir(folder) if n.endswith(".json")))
    except OSError:
        return frozenset()
    known = _seen.get(folder)
    if known is not None and known[0] == names:
        return known[1]
    sources = set()
    for name in names:
        try:
            sources.add(json.loads((folder / name).read_text(encoding="utf-8"))["source"])
        except (OSError, ValueError, KeyError):  # removed meanwhile: the writer finished
            continue
    _seen[folder] = (names, frozenset(sources))
    return _seen[folder][1]


def setup_logging(home: Path) -> None:
    """Log lines (a reader's complaints about a broken PDF, failures) go to RAG_HOME/rag.log, not the terminal."""
    from logging.handlers import RotatingFileHandler

    root = logging.getLogger()
    if any(getattr(h, "rag_log", False) for h in root.handlers):
        return
    try:
        path = private_home(home) / "rag.log"
        handler = RotatingFileHandler(path, maxBytes=5 * 2**20, backupCount=2, encoding="utf-8")
        os.chmod(path, 0o600)
    except OSError:  # a read-only home: no log file, and nothing printed either
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.rag_log = True
    root.addHandler(handler)
    for name in ("rag", "ingest", "ui"):
        logging.getLogger(name).setLevel(logging.INFO)
