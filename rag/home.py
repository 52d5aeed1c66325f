"""RAG_HOME kept private: the index holds the text of every document."""

from __future__ import annotations

import logging
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
    """Files in ``folder`` open to other users made 0600 (said once in the log)."""
    files = folder.rglob("*") if recurse else folder.iterdir()
    loose = [p for p in files if p.is_file() and not p.is_symlink() and p.stat().st_mode & 0o077]
    for path in loose:
        path.chmod(0o600)
    if loose:
        log.warning("%d files under %s were readable by other users; they are now 0600", len(loose), folder)
