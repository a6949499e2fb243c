"""Any folder of images sorted into one sub-folder per class."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from braintumor.data.base import DatasetFormat, Record
from braintumor.data.io import list_images, read_image
from braintumor.data.preprocess import to_channels
from braintumor.data.registry import FORMATS
from braintumor.errors import DataError

# Folder names read as an official split. A validation folder joins the training pool:
# the project carves its own validation set from training patients.
SPLIT_FOLDERS = {
    "training": "train",
    "train": "train",
    "testing": "test",
    "test": "test",
    "val": "train",
    "valid": "train",
    "validation": "train",
}


def _subfolders(folder: Path) -> list[Path]:
    # "__MACOSX" and dot-folders come from zip tools and notebooks, never classes
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _content_hash(path: Path) -> str:
    """SHA-1 of the file bytes (byte-identical copies share a patient id)."""
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


@FORMATS.register()
class ImageFolderFormat(DatasetFormat):
    """``<root>/<class>/<images>``, or ``<root>/<split>/<class>/<images>``.

    Split folders are ``Training``/``Testing``/``train``/``test`` (any case; a
    ``val`` folder joins training). Class names are the sorted names of the class
    folders that hold at least one image (navoneel's ``yes``/``no`` -> ``["no", "yes"]``).
    Images may have any size, aspect and mode; sub-folders inside a class are searched
    too. These sets have no patient ids, so every image is its own "patient", except
    that byte-identical files (navoneel and Nickparvar both ship copies) share one
    patient id, so that a patient-level split or K-fold keeps all copies on one side.
    A split cannot catch two *different* slices of one person on both sides; an
    official Training/Testing split is kept as it is (``braintumor inspect`` reports
    the copies it has across splits).

    Options:
        gray: convert every image to one channel (default ``True``: MRI is gray, and
            RGB JPEGs of MRI only repeat it); ``False`` keeps 3 channels.
    """

    name = "image-folder"
    description = "images in <root>/<class>/ (optionally under Training|Testing/), any size"
    tasks = ("classification",)
    default_options: dict[str, Any] = {"gray": True}
    layout_hint = "<root>/<class>/<image> or <root>/Training|Testing/<class>/<image>"

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        super().__init__(root, **options)
        self._scanned: list[tuple[str | None, str, Path]] | None = None

    # --- layout -------------------------------------------------------------------
    def _split_folders(self) -> list[tuple[str | None, Path]]:
        """(split, folder holding class folders) pairs."""
        assert self.root is not None
        if not self.root.is_dir():
            raise DataError(f"{self.root} is not a folder; expected {self.layout_hint}")
        subs = _subfolders(self.root)
        splits = [p for p in subs if p.name.lower() in SPLIT_FOLDERS]
        if not splits:
            return [(None, self.root)]
        others = [p.name for p in subs if p not in splits]
        if others:
            raise DataError(
                f"{self.root} mixes split folders ({', '.join(p.name for p in splits)}) with "
                f"other folders ({', '.join(others)}); expected {self.layout_hint}"
            )
        return [(SPLIT_FOLDERS[p.name.lower()], p) for p in splits]

    def _scan(self) -> list[tuple[str | None, str, Path]]:
        if self._scanned is None:
            found = []
            for split, folder in self._split_folders():
                for class_dir in _subfolders(folder):
                    for f in list_images(class_dir, recursive=True):
                        found.append((split, class_dir.name, f))
            self._scanned = found
        return self._scanned

    # --- contract -----------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return sorted({c for _, c, _ in self._scan()})

    @property
    def natural_channels(self) -> int:
        return 1 if self.options["gray"] else 3

    def records(self) -> list[Record]:
        index = {c: i for i, c in enumerate(self.classes)}
        scanned = self._scan()
        group: dict[str, str] = {}  # content hash -> patient id (the first path with it)
        recs = []
        for split, c, f in scanned:
            pid = group.setdefault(_content_hash(f), str(f))
            recs.append(Record(path=str(f), patient_id=pid, label=index[c], split=split))
        return self._nonempty(recs, self.root, self.layout_hint)

    def load(self, rec: Record) -> dict[str, Any]:
        image = to_channels(read_image(rec.path), self.natural_channels)
        return self._sample(rec, image, None)
