"""A small on-disk cache for per-file facts that indexing needs (e.g. which slices
hold tumor), so that ``records()`` stays cheap on large sets after the first run.

Entries are keyed by the files' paths, sizes and modification times (plus a format
tag), so editing or replacing a file invalidates its entry. The cache is JSON, never
pickle. It lives in ``$BRAINTUMOR_CACHE/index`` (default ``~/.cache/braintumor``);
if that folder cannot be written the facts are simply recomputed next time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """The folder holding index entries."""
    base = os.environ.get("BRAINTUMOR_CACHE") or Path.home() / ".cache" / "braintumor"
    return Path(base) / "index"


def _key(tag: str, files: Sequence[Path]) -> str:
    h = hashlib.sha256(tag.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def cached_facts(tag: str, files: Sequence[Path], compute: Callable[[], Any]) -> Any:
    """Return ``compute()`` for ``files``, from the cache when they are unchanged.

    ``compute`` must return JSON-serialisable data.
    """
    path = cache_root() / f"{tag}-{_key(tag, files)}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass  # absent or half-written: recompute
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(path)  # atomic: parallel readers never see a partial file
    except OSError:
        pass  # read-only home or full disk: the index still works, only slower
    return value
