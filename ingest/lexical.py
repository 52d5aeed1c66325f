"""The BM25 side as ingestion keeps it: the chunk table brought up to date source by source, and
each version of the index saved in a folder named by its stamp (what ``rag.lexical`` loads).

A chunk's distinct tokens are kept as columns of a vocabulary with their counts, with its source
and interviewee, in a small SQLite table; a run tokenises only the chunks it added.
"""

from __future__ import annotations

import array
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ingest.tokens import Tokenizer
from rag.lexical import (
    COMPLETE,
    LexicalIndex,
    Vocabulary,
    _centroid,
    folder,
    inverse_frequencies,
    known_idf,
    weight_matrix,
)
from rag.store import iter_pages
from rag.text import tokenize

BLOCK = 20_000  # chunks read at a time when the index is made from the table
SEPARATOR = "\x1f"  # between tokens in the table earlier versions kept (read once, to convert it)


class ChunkTable:
    """The chunk table, open for one run: each changed source's rows made equal to its chunks now
    as soon as its file is done, so a run holds no more than one file's chunks for the BM25 side.

    ``submit`` takes, source by source, the source's chunks now as (id, stored text, interviewee),
    an empty list for a source removed; only those rows change and only chunks new to the table
    are tokenised -- by ``tokenizer`` (``ingest.tokens``), while the caller goes on to the next
    file; their rows are written at the next ``submit`` or ``flush``.  Each step is committed: a
    run stopped later leaves rows that agree with Chroma for the files it finished (and
    ``write`` checks the count in any case).
    """

    def __init__(self, home: Path, collection_name: str, tokenizer: Tokenizer | None = None) -> None:
        root = folder(home, collection_name)
        root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(root / "chunks.sqlite")
        self.vocabulary = _open(self.db)
        self.tokenizer = tokenizer or Tokenizer(apart=False)
        self._pending: tuple[list[tuple[str, str, str]], Callable[[], list[list[str]]]] | None = None

    def submit(self, changes: dict[str, list]) -> None:
        """Rows of chunks gone deleted and interviewees brought up to date now; new chunks' rows
        once their tokens are back (the previous submission's are written first)."""
        self.flush()
        new = _change(self.db, changes)
        self._pending = (new, self.tokenizer.submit([text for _, _, _, text in new]))
        self.commit()

    def flush(self) -> None:
        """The rows of the chunks submitted last written, once their tokens are back."""
        if self._pending is not None:
            (new, tokens), self._pending = self._pending, None
            _insert(self.db, ((i, s, p, t) for (i, s, p, _), t in zip(new, tokens(), strict=True)), self.vocabulary)
            self.commit()

    def apply(self, changes: dict[str, list]) -> None:
        self.submit(changes)
        self.flush()

    def commit(self) -> None:
        self.db.executemany("INSERT INTO vocab VALUES (?, ?)", self.vocabulary.new)
        self.vocabulary.new.clear()
        self.db.commit()

    def close(self) -> None:
        self.tokenizer.close()
        self.db.close()

    def __enter__(self) -> ChunkTable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write(home: Path, collection, stamp: str, changes: dict[str, list] | None = None) -> Path:
    """Bring the chunk table up to date and save the index for ``stamp``.

    ``changes``: as ``ChunkTable.apply`` takes them (``{}``: applied already, file by file).
    Without ``changes``, or when the table's count disagrees with Chroma's afterwards (a run cut
    short, an index from before the table existed), the table is made again from one paginated
    read of the collection.
    """
    with ChunkTable(home, collection.name) as table:
        if changes:
            table.apply(changes)
        db = table.db
        if changes is None or db.execute("SELECT count(*) FROM terms").fetchone()[0] != collection.count():
            _refill(db, collection, table.vocabulary)
        table.commit()
        index = from_table(db, table.vocabulary)
    index.centroid = _centroid(collection, index.ids)
    return _save(index, folder(home, collection.name), stamp)


def from_table(db, vocabulary: Vocabulary) -> LexicalIndex:
    """The index of the chunk table's rows, read twice: first what each chunk and token counts
    (lengths, document frequencies), then the postings a block at a time, for
    ``rag.lexical.weight_matrix``.  Nothing the size of all postings is held but the matrix
    (``rag.lexical.build``, for chunks read from Chroma, holds them in memory; both give the
    same arrays, tested)."""
    ids, sources, interviewees, lengths, df = _first_pass(db, vocabulary)
    if not ids:
        return LexicalIndex([], None, {}, [], [], None)
    idf = inverse_frequencies(len(ids), df)
    bm25 = weight_matrix(len(ids), df, idf, lengths, _blocks(db), vocabulary.columns)
    return LexicalIndex(ids, bm25, known_idf(vocabulary, idf, df), sources, interviewees, None)


def _first_pass(db, vocabulary: Vocabulary) -> tuple:
    """Ids, sources, interviewees; tokens per chunk; chunks per token."""
    ids, sources, interviewees, names = [], [], [], {}
    lengths = array.array("d")
    df = np.zeros(len(vocabulary.columns), dtype=np.int64)
    pending: list[bytes] = []
    for chunk_id, source, person, columns, counts in db.execute(
        "SELECT id, source, interviewee, columns, counts FROM terms ORDER BY rowid"
    ):
        ids.append(chunk_id)
        sources.append(names.setdefault(source, source))  # one string per source, not one per chunk
        interviewees.append(names.setdefault(person, person))
        lengths.append(float(np.frombuffer(counts, dtype=np.int32).sum()))
        pending.append(columns)
        if len(pending) == BLOCK:
            df += np.bincount(np.frombuffer(b"".join(pending), dtype=np.int32), minlength=len(df))
            pending.clear()
    df += np.bincount(np.frombuffer(b"".join(pending), dtype=np.int32), minlength=len(df))
    return ids, sources, interviewees, np.frombuffer(lengths, np.float64), df


def _blocks(db) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The table's postings, ``BLOCK`` chunks at a time: columns, counts, distinct tokens per chunk."""
    columns, counts = [], []
    for row in db.execute("SELECT columns, counts FROM terms ORDER BY rowid"):
        columns.append(row[0])
        counts.append(row[1])
        if len(columns) == BLOCK:
            yield _block(columns, counts)
            columns, counts = [], []
    if columns:
        yield _block(columns, counts)


def _block(columns: list[bytes], counts: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sizes = np.fromiter(map(len, columns), dtype=np.int64, count=len(columns)) // 4
    tf = np.frombuffer(b"".join(counts), dtype=np.int32).astype(np.float32)
    return np.frombuffer(b"".join(columns), dtype=np.int32), tf, sizes


def _open(db) -> Vocabulary:
    """The tables made when missing (a table of token strings, as earlier versions kept, is
    converted: no chunk is tokenised again); the vocabulary they hold."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS terms (id TEXT PRIMARY KEY, source TEXT NOT NULL, "
        "interviewee TEXT NOT NULL, columns BLOB NOT NULL, counts BLOB NOT NULL)"
    )
    db.execute("CREATE TABLE IF NOT EXISTS vocab (token TEXT PRIMARY KEY, col INTEGER NOT NULL UNIQUE)")
    vocabulary = Vocabulary(dict(db.execute("SELECT token, col FROM vocab")))
    if db.execute("SELECT name FROM sqlite_master WHERE name = 'chunks'").fetchone():
        rows = db.execute("SELECT id, source, interviewee, tokens FROM chunks ORDER BY rowid")
        _insert(db, ((i, s, p, t.split(SEPARATOR) if t else []) for i, s, p, t in rows), vocabulary)
        db.execute("DROP TABLE chunks")
    return vocabulary


def _insert(db, chunks: Iterable[tuple[str, str, str, list[str]]], vocabulary: Vocabulary) -> None:
    """Rows for (id, source, interviewee, tokens) written (replacing any of the same id)."""
    rows = []
    for chunk_id, source, person, tokens in chunks:
        columns, counts = vocabulary.counted(tokens)
        rows.append((chunk_id, source, person, columns.tobytes(), counts.tobytes()))
        if len(rows) >= 10_000:
            db.executemany("INSERT OR REPLACE INTO terms VALUES (?, ?, ?, ?, ?)", rows)
            rows.clear()
    db.executemany("INSERT OR REPLACE INTO terms VALUES (?, ?, ?, ?, ?)", rows)


def _change(db, changes: dict[str, list]) -> list[tuple[str, str, str, str]]:
    """Each changed source's rows of chunks gone deleted and interviewees updated; the chunks
    new to the table, as (id, source, interviewee, stored text), to be tokenised."""
    new = []
    for source, chunks in changes.items():
        have = {row[0] for row in db.execute("SELECT id FROM terms WHERE source = ?", (source,))}
        now = {chunk_id for chunk_id, _, _ in chunks}
        db.executemany("DELETE FROM terms WHERE id = ?", [(i,) for i in have - now])
        new += [(i, source, person, text) for i, text, person in chunks if i not in have]
        db.executemany(
            "UPDATE terms SET interviewee = ? WHERE id = ?", [(person, i) for i, _, person in chunks if i in have]
        )
    return new


def _refill(db, collection, vocabulary: Vocabulary) -> None:
    """The table made again from the collection: rows it lacks added, rows Chroma lacks removed."""
    known = {row[0] for row in db.execute("SELECT id FROM terms")}
    live = set()
    for page in iter_pages(collection, ["documents", "metadatas"]):
        live.update(page["ids"])
        fresh = zip(page["ids"], page["documents"], page["metadatas"], strict=True)
        _insert(
            db,
            ((i, m["source"], m.get("interviewee", ""), tokenize(text)) for i, text, m in fresh if i not in known),
            vocabulary,
        )
    db.executemany("DELETE FROM terms WHERE id = ?", [(i,) for i in known - live])


def _save(index: LexicalIndex, root: Path, stamp: str) -> Path:
    """``index`` written into ``root/stamp`` (through a partial folder renamed into place)."""
    target, partial = root / stamp, root / f"{stamp}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    if index.bm25 is not None:
        index.bm25.save(str(partial / "bm25"), show_progress=False)
    (partial / "chunks.json").write_text(
        json.dumps(
            {"ids": index.ids, "sources": index.sources, "interviewees": index.interviewees}, ensure_ascii=False
        ),
        encoding="utf-8",
    )
    (partial / "idf.json").write_text(json.dumps(index.idf, ensure_ascii=False), encoding="utf-8")
    if index.centroid is not None:
        np.save(partial / "centroid.npy", index.centroid.astype(np.float32))
    (partial / COMPLETE).write_text(json.dumps({"chunks": len(index.ids)}), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def forget_others(home: Path, collection_name: str, stamp: str) -> None:
    """Remove the saved versions other than ``stamp``'s (a process still reading one keeps
    its open files where the system allows it; elsewhere it is left for the next run)."""
    for old in folder(home, collection_name).iterdir():
        if old.is_dir() and old.name != stamp:
            shutil.rmtree(old, ignore_errors=True)
