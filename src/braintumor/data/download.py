"""Download the public data sets the formats read, into exactly the layout they expect.

Downloads go through the Kaggle API (optional extra: ``pip install 'braintumor[kaggle]'``
and a ``~/.kaggle/kaggle.json`` token). The archive is unpacked into a temporary
folder next to the target, rearranged into the loader's layout, its file counts
checked, and only then renamed onto the target: a failed download never leaves a
half-written folder behind. Without the package, credentials or network, the error
says how to do the same by hand.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from braintumor.errors import DataError
from braintumor.registry import Registry


class DownloadClient(Protocol):
    """Anything that can fetch a Kaggle data set and unzip it into a folder."""

    def download(self, slug: str, dest: Path) -> None: ...


@dataclass(frozen=True)
class KnownDataset:
    """A downloadable data set and how to turn its archive into the loader's layout."""

    name: str
    slug: str  # Kaggle owner/name
    format: str  # the braintumor format that reads it
    layout: str  # where files must end up, relative to the target (for humans)
    find: Callable[[Path], Path | None]  # locate the data inside the unpacked archive
    keep: tuple[str, ...]  # names moved from the located folder into the target
    expected: dict[str, int] = field(default_factory=dict)  # glob -> count (current release)
    subdir: str = ""  # the format reads target/subdir

    @property
    def url(self) -> str:
        return f"https://www.kaggle.com/datasets/{self.slug}"


def _dir_with(*names: str) -> Callable[[Path], Path | None]:
    """Finder: the shallowest folder that contains all ``names`` as sub-folders."""

    def find(root: Path) -> Path | None:
        for here, dirs, _ in sorted(os.walk(root), key=lambda w: (w[0].count(os.sep), w[0])):
            if all(n in dirs for n in names):
                return Path(here)
        return None

    return find


def _dir_with_files(pattern: str) -> Callable[[Path], Path | None]:
    def find(root: Path) -> Path | None:
        for here, _, files in sorted(os.walk(root), key=lambda w: (w[0].count(os.sep), w[0])):
            if any(Path(f).match(pattern) for f in files):
                return Path(here)
        return None

    return find


DOWNLOADS: Registry[KnownDataset] = Registry("downloadable data set")
for _ds in (
    KnownDataset(
        "brain-tumor-mri", "masoudnickparvar/brain-tumor-mri-dataset", "brain-tumor-mri",
        "DIR/Training/<class>/*.jpg and DIR/Testing/<class>/*.jpg",
        _dir_with("Training", "Testing"), ("Training", "Testing"),
        {"Training/*/*.jpg": 5712, "Testing/*/*.jpg": 1311},
    ),
    KnownDataset(
        "lgg", "mateuszbuda/lgg-mri-segmentation", "lgg",
        "DIR/kaggle_3m/TCGA_*/<case>_<slice>.tif with <case>_<slice>_mask.tif",
        _dir_with("kaggle_3m"), ("kaggle_3m",),
        {"kaggle_3m/TCGA_*/*_mask.tif": 3929, "kaggle_3m/TCGA_*": 110},
        subdir="kaggle_3m",
    ),
    KnownDataset(
        "navoneel", "navoneel/brain-mri-images-for-brain-tumor-detection", "image-folder",
        "DIR/yes/*.jpg and DIR/no/*.jpg",
        _dir_with("yes", "no"), ("yes", "no"),
        {"yes/*": 155, "no/*": 98},
    ),
    KnownDataset(
        "brats2020-h5", "awsaf49/brats2020-training-data", "brats-h5",
        "DIR/volume_<v>_slice_<s>.h5",
        _dir_with_files("volume_*_slice_*.h5"), ("volume_*_slice_*.h5",),
        {"volume_*_slice_*.h5": 57195},
    ),
    KnownDataset(
        "busi", "aryashah2k/breast-ultrasound-images-dataset", "busi",
        "DIR/{benign,malignant,normal}/<name>.png with <name>_mask.png",
        _dir_with("benign", "malignant", "normal"), ("benign", "malignant", "normal"),
        {"benign/*_mask.png": 437, "malignant/*_mask.png": 210, "normal/*_mask.png": 133},
    ),
):  # fmt: skip
    DOWNLOADS.register(_ds.name)(_ds)


def manual_steps(ds: KnownDataset, target: Path) -> str:
    """One sentence that says how to get the data without this tool."""
    return (
        f"download {ds.url} by hand and unzip it so that {ds.layout.replace('DIR', str(target))}"
        " exists"
    )


class KaggleClient:
    """The real client: the official ``kaggle`` package."""

    def __init__(self) -> None:
        from kaggle.api.kaggle_api_extended import KaggleApi  # optional dependency

        self.api = KaggleApi()
        self.api.authenticate()

    def download(self, slug: str, dest: Path) -> None:
        self.api.dataset_download_files(slug, path=str(dest), unzip=True, quiet=False)


def _default_client(ds: KnownDataset, target: Path) -> DownloadClient:
    try:
        return KaggleClient()
    except ImportError:
        raise DataError(
            "kaggle package not installed: pip install 'braintumor[kaggle]' and put kaggle.json "
            f"in ~/.kaggle, or {manual_steps(ds, target)}"
        ) from None
    except Exception as exc:  # the kaggle package raises several types for missing tokens
        raise DataError(
            f"Kaggle credentials not usable ({_first_line(exc)}): put kaggle.json from "
            f"https://www.kaggle.com/settings in ~/.kaggle, or {manual_steps(ds, target)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass
class DownloadResult:
    """Where the data went and what was checked."""

    spec: str  # FORMAT:PATH to pass to the other commands
    path: Path
    counts: dict[str, int]
    warnings: list[str]


def check_counts(ds: KnownDataset, root: Path) -> tuple[dict[str, int], list[str]]:
    """Count files per expected pattern; no file at all is an error, other gaps warn."""
    counts = {pattern: len(list(root.glob(pattern))) for pattern in ds.expected}
    if ds.expected and not any(counts.values()):
        raise DataError(
            f"the {ds.name} archive has none of the expected files ({', '.join(ds.expected)}); "
            f"the Kaggle release may have changed: {manual_steps(ds, root)}"
        )
    warnings = [
        f"{pattern}: found {n} files, expected {ds.expected[pattern]} (different release "
        "or incomplete download?)"
        for pattern, n in counts.items()
        if n != ds.expected[pattern]
    ]
    return counts, warnings


def download(
    name: str,
    to: str | Path,
    *,
    force: bool = False,
    client: DownloadClient | Callable[[], DownloadClient] | None = None,
) -> DownloadResult:
    """Download the data set ``name`` into ``to`` in the layout its format reads.

    Args:
        name: One of :data:`DOWNLOADS` (``brain-tumor-mri``, ``lgg``, ...).
        to: Target folder; must be absent or empty unless ``force``.
        force: Replace a non-empty target (only after the new data is complete).
        client: A :class:`DownloadClient` or a factory of one (tests inject fakes);
            default: the Kaggle API.

    Returns:
        The ``FORMAT:PATH`` spec and the file counts, with warnings for unexpected counts.
    """
    ds = DOWNLOADS.get(name)
    target = Path(to).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise DataError(f"{target} is a file; give a folder to --to")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise DataError(f"{target} is not empty; choose another folder or pass --force to replace")
    if client is None:
        client = _default_client(ds, target)
    elif isinstance(client, type) or not hasattr(client, "download"):
        client = client()  # a factory
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        raw, final = tmp / "raw", tmp / "final"
        raw.mkdir()
        final.mkdir()
        try:
            client.download(ds.slug, raw)
        except Exception as exc:  # network, HTTP, quota: all end the same way for the user
            raise DataError(
                f"could not download {ds.slug} ({_first_line(exc)}); {manual_steps(ds, target)}"
            ) from None
        found = ds.find(raw)
        if found is None:
            raise DataError(
                f"the {ds.name} archive does not have the expected layout ({ds.layout}); "
                f"{manual_steps(ds, target)}"
            )
        for pattern in ds.keep:
            for item in sorted(found.glob(pattern)):
                shutil.move(str(item), final / item.name)
        counts, warnings = check_counts(ds, final)
        _replace(final, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    data_path = target / ds.subdir if ds.subdir else target
    return DownloadResult(f"{ds.format}:{data_path}", target, counts, warnings)


def _replace(src: Path, target: Path) -> None:
    """Rename ``src`` onto ``target``; an old target is removed only after the swap."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    try:
        src.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)  # put the previous data back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
