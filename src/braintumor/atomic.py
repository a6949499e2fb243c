"""Atomic file writes: a crash, Ctrl+C or full disk never leaves a half-written file.

The new content goes to a temporary file in the same folder, which then replaces
the target with :func:`os.replace` (atomic on POSIX and Windows within one file
system). Until that moment the old file, if any, is intact; a failed write removes
its temporary file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``.

    Example::

        with atomic_path(run / "model.safetensors") as tmp:
            save_file(state, str(tmp))
    """
    target = Path(path)
    # Same folder (same file system, so os.replace is a rename); a dot name that the
    # run-folder readers never pick up; pid + random part: parallel writers never clash.
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")  # exactly the given text
    return target


@contextmanager
def new_folder(path: str | Path) -> Iterator[Path]:
    """Remove ``path`` again if the block fails and the folder did not exist before.

    Only a folder this block created and left without files is removed: a failed command
    leaves no empty ``--out`` behind, and never deletes anything it did not make.
    """
    folder = Path(path).expanduser()
    existed = folder.exists()
    try:
        yield folder
    except BaseException:
        if not existed and folder.is_dir() and not any(q.is_file() for q in folder.rglob("*")):
            shutil.rmtree(folder, ignore_errors=True)  # only empty sub-folders inside
        raise
