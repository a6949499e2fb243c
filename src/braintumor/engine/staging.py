"""Train beside the run folder, then swap: a killed or failed run never costs the old one.

::

    runs/unet/            the run folder: the old run (if any) stays untouched while ...
    runs/.unet.partial/   ... the new run trains here: config, splits, logs, checkpoints

When the new run is complete (weights, card, metrics written), :func:`swap_in` moves
its files into the run folder one rename at a time, moving the old run's files aside
first, then deletes the old files and the partial folder. Anything else in the run
folder (notes, evaluations of other data, predictions) is left alone. A manifest
written before the first rename makes the swap restartable: if the process dies
during those few renames, :func:`recover` (called by the next ``train`` on that
folder) finishes it. A killed run leaves only its partial folder, which
``train --resume`` continues and a new ``train --force`` discards, so its logs never
mix with the next run's.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from braintumor.atomic import write_text_atomic
from braintumor.inference import runs

_MANIFEST = ".swap.json"  # written when the partial run is complete; lists its entries
_REPLACED = ".replaced"  # the old run's files, moved aside during the swap
_FOLD = re.compile(r"fold_\d+")


def partial_dir(out: Path) -> Path:
    """The folder where a new run for ``out`` is built."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def _run_entries(folder: Path) -> list[str]:
    """Names of the run files and fold folders present in ``folder``."""
    if not folder.is_dir():
        return []
    names = [n for n in runs.RUN_ARTIFACTS if (folder / n).exists()]
    names += sorted(p.name for p in folder.iterdir() if p.is_dir() and _FOLD.fullmatch(p.name))
    return names


def swap_in(work: Path, out: Path) -> Path:
    """Replace the run files of ``out`` by those of the complete run in ``work``."""
    new = _run_entries(work)
    write_text_atomic(work / _MANIFEST, json.dumps({"entries": new}) + "\n")
    _finish(work, out)
    return out


def _finish(work: Path, out: Path) -> None:
    new = json.loads((work / _MANIFEST).read_text())["entries"]
    out.mkdir(parents=True, exist_ok=True)
    aside = work / _REPLACED
    aside.mkdir(exist_ok=True)
    # Every step is a rename that a rerun skips once done, so a swap cut short by a
    # kill can be finished by running this again.
    for name in sorted(set(new) | set(_run_entries(out))):
        src, dst = work / name, out / name
        if name in new and not src.exists():
            continue  # already moved in
        if dst.exists() or dst.is_symlink():
            _discard(aside / name)
            dst.rename(aside / name)
        if name in new:
            src.rename(dst)
    shutil.rmtree(work)


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def recover(out: Path) -> None:
    """Finish a swap into ``out`` that a kill cut short (a no-op otherwise)."""
    work = partial_dir(out)
    if (work / _MANIFEST).is_file():
        _finish(work, Path(out))


def discard(work: Path) -> None:
    """Remove a partial run folder (a failed run, or one ``--force`` starts over)."""
    shutil.rmtree(work, ignore_errors=True)


__all__ = ["discard", "partial_dir", "recover", "swap_in"]
