"""Inspect a data set: counts, sizes, modes, masks, and exact / near duplicates.

:func:`inspect_dataset` makes one pass over a format's records and returns a
JSON-able summary. Duplicates are what inflates published scores on the popular
Kaggle sets (the same image in Training and Testing), so they are counted per
split and across splits, exactly (SHA-1) and approximately (perceptual hash).

- Exact content: SHA-1 of the file bytes for one-file samples; for slices of a
  volume, SHA-1 of the decoded slice array. Blank slices (one constant value, e.g.
  the empty top and bottom of a BraTS volume) are counted as ``n_blank`` and left
  out of duplicate counts, where they would otherwise dominate.
- Near content (the same picture re-encoded, rescaled, re-contrasted, or an almost
  identical neighbouring slice): candidates from a 64-bit pHash (DCT of a 32x32
  grayscale thumbnail, Hamming distance <= ``NEAR_THRESHOLD``), confirmed by the
  correlation of the edge maps of 64x64 thumbnails (>= ``EDGE_CORRELATION``).
  The pHash alone, at any useful threshold, also pairs different axial slices of
  different patients (same head outline); the edge check removed all of those on
  the LGG and Nickparvar sets while keeping the visually identical pairs.
  Pairs with identical content are exact, not near, duplicates.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from braintumor.data.base import DatasetFormat, Record
from braintumor.errors import BrainTumorError, DataError

SPLIT_ORDER = ("train", "val", "test")
NEAR_THRESHOLD = 4  # bits of 64 (pHash distances are even: each hash has 32 ones)
EDGE_CORRELATION = 0.9
THUMB = 64  # side of the uint8 thumbnail kept per sample (4 KiB)
# Class names that mean "no tumor" in the supported sets (brain-tumor-mri, navoneel, BUSI).
NO_TUMOR_CLASSES = {"notumor", "no_tumor", "no tumor", "no", "normal", "healthy", "negative"}


@dataclass
class _Item:
    """What the scan keeps of one record (no pixels except a tiny thumbnail)."""

    key: str
    split: str
    digest: str | None = None
    hw: tuple[int, int] | None = None
    mode: str | None = None
    tumor: bool | None = None
    thumb: np.ndarray | None = None
    blank: bool = False
    decoded: bool = False  # digest of the decoded array, not of the file bytes
    error: str | None = None


def _thumb(img: Image.Image) -> np.ndarray:
    if img.format == "JPEG":
        img.draft("L", (THUMB, THUMB))  # decode at 1/2..1/8 scale: much faster
    return np.asarray(img.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR))


def _thumb_array(image: np.ndarray) -> np.ndarray:
    plane = image.mean(axis=0) if image.ndim == 3 else image
    lo, hi = float(plane.min()), float(plane.max())
    scaled = (plane - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(plane)
    return _thumb(Image.fromarray(scaled.astype(np.uint8)))


def _file_type(path: str) -> str:
    suffixes = Path(path).suffixes
    kept = suffixes[-2:] if suffixes[-1:] == [".gz"] else suffixes[-1:]
    return "".join(kept).lower() or ("(folder)" if Path(path).is_dir() else "(none)")


def _scan(
    fmt: DatasetFormat, rec: Record, split: str, decode: bool, near: bool, tumor: list[bool]
) -> _Item:
    """Hash and measure one record; ``decode`` = hash the decoded array (volume slices).

    ``tumor[label]`` says whether a class means tumor (used when there are no masks).
    """
    it = _Item(key=rec.key, split=split)
    sample = None
    if not decode:
        data = Path(rec.path).read_bytes()
        it.digest = hashlib.sha1(data).hexdigest()
        try:
            with Image.open(io.BytesIO(data)) as img:
                if isinstance(img, ImageFile.StubImageFile):  # Pillow "knows" HDF5 but
                    raise UnidentifiedImageError(rec.path)  # cannot read it
                it.hw, it.mode = (img.height, img.width), img.mode
                if near:
                    it.thumb = _thumb(img)
        except (UnidentifiedImageError, OSError):
            it.hw = it.mode = None
            sample = fmt.load(rec)  # not a 2D image file (h5, dicom, ...): decode it
    else:
        sample = fmt.load(rec)
        image = sample["image"]
        it.digest = hashlib.sha1(repr(image.shape).encode() + image.tobytes()).hexdigest()
        it.decoded = True
    if sample is not None:
        image = sample["image"]
        it.hw = it.hw or (int(image.shape[-2]), int(image.shape[-1]))
        it.blank = bool(image.min() == image.max())  # e.g. the empty ends of a volume
        if near and it.thumb is None:
            it.thumb = _thumb_array(image)
    if fmt.mask_channels:
        if sample is None and rec.mask_path:
            with Image.open(rec.mask_path) as m:
                it.tumor = bool(np.asarray(m).any())
        else:
            mask = (sample if sample is not None else fmt.load(rec))["mask"]
            it.tumor = bool(mask is not None and mask.any())
    elif 0 <= rec.label < len(tumor):
        it.tumor = tumor[rec.label]
    return it


def assign_splits(
    records: list[Record], *, seed: int, val_fraction: float, test_fraction: float
) -> tuple[dict[str, str], str]:
    """Record key -> split name: the official splits if any, else the patient-level split."""
    if any(r.split for r in records):
        return {r.key: r.split or "train" for r in records}, "official"
    from braintumor.data.splits import make_splits

    try:
        parts = make_splits(records, val_fraction, test_fraction, seed)
    except BrainTumorError as exc:  # e.g. one patient: still worth inspecting, unsplit
        return {r.key: "train" for r in records}, f"none ({exc})"
    out = {}
    for name, members in parts.items():
        for m in members:
            out[m.key if isinstance(m, Record) else str(m)] = name
    source = f"patient-level (seed={seed}, val={val_fraction}, test={test_fraction})"
    return out, source


def _ordered(names: set[str]) -> list[str]:
    return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))


def _progress(seq: list[Record], enabled: bool, label: str):
    if not enabled:
        return seq
    from rich.console import Console
    from rich.progress import track

    return track(seq, description=label, console=Console(stderr=True), transient=True)


def inspect_dataset(
    fmt: DatasetFormat,
    *,
    seed: int = 42,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    near_duplicates: bool = True,
    progress: bool = True,
    near_threshold: int = NEAR_THRESHOLD,
) -> dict[str, Any]:
    """Summarise a data set and audit it for duplicates and leakage.

    Args:
        fmt: The format instance (``create_format("brain-tumor-mri:/data")``).
        seed, val_fraction, test_fraction: The patient-level split reported when the
            data set has no official split (the split training would use).
        near_duplicates: Also look for near-duplicates (perceptual hash).
        progress: Show a progress bar on stderr.
        near_threshold: Largest Hamming distance (of 64 bits) that counts as near.

    Returns:
        A JSON-able dict; ``warnings`` holds human sentences about problems found.
    """
    t0 = time.perf_counter()
    records = fmt.records()
    split_of, split_source = assign_splits(
        records, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
    )
    path_count = Counter(r.path for r in records)
    names = fmt.classes  # once: some formats derive it from a scan of the records
    tumor = [c.lower() not in NO_TUMOR_CLASSES for c in names]
    items: list[_Item] = []
    for rec in _progress(records, progress, f"inspecting {fmt.name}"):
        # Hash the file bytes only when the record is one whole file of its own.
        single = path_count[rec.path] == 1 and rec.extra.get("slice") is None
        decode = not (single and os.path.isfile(rec.path))
        split = split_of.get(rec.key, "unassigned")
        try:
            items.append(_scan(fmt, rec, split, decode, near_duplicates, tumor))
        except (OSError, ValueError, BrainTumorError) as exc:
            items.append(_Item(key=rec.key, split=split, error=f"{type(exc).__name__}: {exc}"))
    if items and all(it.error for it in items):
        raise DataError(f"none of the {len(items)} samples could be read; e.g. {items[0].error}")

    splits = _ordered({it.split for it in items})
    class_of = [names[r.label] if 0 <= r.label < len(names) else "-" for r in records]
    columns = names + (["-"] if "-" in class_of else [])  # "-": no label
    per_split_class = {s: dict.fromkeys(columns, 0) for s in splits}
    for c, it in zip(class_of, items, strict=True):
        per_split_class[it.split][c] += 1
    split_patients: dict[str, set[str]] = defaultdict(set)
    patient_splits: dict[str, set[str]] = defaultdict(set)
    for rec, it in zip(records, items, strict=True):
        split_patients[it.split].add(rec.patient_id)
        patient_splits[rec.patient_id].add(it.split)

    ok = [it for it in items if it.error is None]
    sizes = Counter(it.hw for it in ok if it.hw)
    by_area = sorted(sizes, key=lambda hw: (hw[0] * hw[1], hw))
    tumor_known = [it.tumor for it in ok if it.tumor is not None]
    summary: dict[str, Any] = {
        "format": fmt.name,
        "root": str(fmt.root) if fmt.root is not None else None,
        "options": fmt.options,
        "n_samples": len(records),
        "n_patients": len({r.patient_id for r in records}),
        "classes": {c: class_of.count(c) for c in columns},
        "split_source": split_source,
        "splits": {s: sum(per_split_class[s].values()) for s in splits},
        "per_split_class": per_split_class,
        "patients_per_split": {s: len(split_patients[s]) for s in splits},
        "patients_in_several_splits": sum(len(v) > 1 for v in patient_splits.values()),
        "image_sizes": {
            "most_common": [[f"{h}x{w}", n] for (h, w), n in sizes.most_common(5)],
            "n_distinct": len(sizes),
            "min": "{}x{}".format(*by_area[0]) if by_area else None,
            "max": "{}x{}".format(*by_area[-1]) if by_area else None,
        },
        "modes": dict(Counter(it.mode for it in ok if it.mode)),
        "file_types": dict(Counter(_file_type(r.path) for r in records)),
        "channels": fmt.natural_channels,
        "mask_channels": list(fmt.mask_channels),
        "n_with_tumor": sum(bool(t) for t in tumor_known),
        "tumor_fraction": round(sum(tumor_known) / len(tumor_known), 4) if tumor_known else None,
        "tumor_source": "mask" if fmt.mask_channels else "label",
        "n_blank": sum(it.blank for it in ok),
        "n_unreadable": len(items) - len(ok),
        "unreadable_examples": [[it.key, it.error] for it in items if it.error][:5],
    }
    summary.update(_exact_duplicates(ok, splits))
    if near_duplicates:
        summary.update(_near_duplicates(ok, splits, near_threshold))
        summary["near_method"] = (
            f"64-bit pHash distance <= {near_threshold} and edge correlation >= {EDGE_CORRELATION}"
        )
    summary["warnings"] = _warnings(summary)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def _warnings(s: dict[str, Any]) -> list[str]:
    out = []
    names = list(s["splits"])
    for later, n in s["duplicates_across_splits"].items():
        if later != "total" and n:
            earlier = "/".join(names[: names.index(later)])
            what = "byte-identical" if s["exact_method"] == "file" else "identical"
            out.append(
                f"{n} {later} files are {what} to {earlier} files: "
                "evaluation on this split is inflated"
            )
    for split, n in s["duplicates_within"].items():
        if split != "total" and n:
            out.append(
                f"{n} extra exact copies within {split}: these images weigh double, "
                "and a random split would leak them"
            )
    for later, n in s.get("near_duplicates_across_splits", {}).items():
        if later != "total" and n:
            out.append(
                f"{n} {later} files are near-duplicates of earlier-split files "
                f"({s['near_method']}): look at the examples"
            )
    if s["patients_in_several_splits"]:
        out.append(
            f"{s['patients_in_several_splits']} patients have samples in several "
            "splits: patient-level leakage"
        )
    if s["n_patients"] == s["n_samples"] and s["n_samples"] > 1:
        out.append(
            "no patient ids (one per sample): slices of the same patient may sit in "
            "different splits"
        )
    if s["split_source"].startswith("none"):
        out.append(f"no patient-level split possible: {s['split_source'][6:-1]}")
    counts = [n for c, n in s["classes"].items() if c != "-"]
    if len(counts) > 1 and max(counts) > 3 * min(counts):
        out.append(f"classes are imbalanced ({s['classes']}): prefer balanced accuracy / macro F1")
    if len(s["modes"]) > 1:
        out.append(f"image modes are mixed ({s['modes']}): channels are unified by preprocessing")
    if s["image_sizes"]["n_distinct"] > 1:
        sz = s["image_sizes"]
        out.append(
            f"{sz['n_distinct']} different image sizes (from {sz['min']} to "
            f"{sz['max']}): images are resized, check aspect ratios in the preview"
        )
    if s["n_blank"]:
        out.append(
            f"{s['n_blank']} blank samples (one constant value), left out of duplicate counts"
        )
    if s["n_unreadable"]:
        out.append(
            f"{s['n_unreadable']} samples could not be read, e.g. {s['unreadable_examples'][0][0]}"
        )
    return out


# --- duplicates -------------------------------------------------------------------
def _exact_duplicates(items: list[_Item], splits: list[str]) -> dict[str, Any]:
    """Extra copies within each split, and later-split files already seen earlier."""
    items = [it for it in items if not it.blank]
    within, across, ex_within, ex_across = {}, {}, [], []
    seen: dict[str, tuple[str, str]] = {}  # digest -> (split, key) where first seen
    for i, split in enumerate(splits):
        first: dict[str, str] = {}
        within[split], n_across = 0, 0
        for it in (it for it in items if it.split == split):
            assert it.digest is not None
            if it.digest in first:
                within[split] += 1
                ex_within.append({"split": split, "a": first[it.digest], "b": it.key})
            first.setdefault(it.digest, it.key)
            if it.digest in seen:
                n_across += 1
                earlier_split, earlier = seen[it.digest]
                ex_across.append(
                    {"split": split, "file": it.key, "earlier_split": earlier_split,
                     "earlier_file": earlier}
                )  # fmt: skip
        if i:
            across[split] = n_across
        for d, key in first.items():
            seen.setdefault(d, (split, key))
    decoded = {it.decoded for it in items}
    return {
        "exact_method": "mixed" if len(decoded) > 1 else ("array" if True in decoded else "file"),
        "duplicates_within": {**within, "total": sum(within.values())},
        "duplicates_across_splits": {**across, "total": sum(across.values())},
        "duplicate_examples": {"within": ex_within[:5], "across": ex_across[:5]},
    }


def phash(thumbs: np.ndarray) -> np.ndarray:
    """64-bit perceptual hashes (uint64) of N x S x S grayscale thumbnails (32 divides S)."""
    from scipy.fft import dctn

    f = thumbs.shape[1] // 32
    t = thumbs.astype(np.float32)
    # f x f average pooling as a sum of strided views: far faster than reshape().mean().
    small = sum(t[:, i::f, j::f] for i in range(f) for j in range(f)) / (f * f)
    low = dctn(small, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(t), 64)
    # Median of the AC terms, as in the usual pHash: the DC term is just brightness.
    bits = low > np.median(low[:, 1:], axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[x.view(np.uint8)].reshape(*x.shape, 8).sum(-1)


def close_pairs(hashes: np.ndarray, threshold: int, chunk: int = 512) -> np.ndarray:
    """P x 3 array of (i, j, distance), i < j, Hamming distance <= threshold (vectorised)."""
    found = [np.zeros((0, 3), np.int64)]
    for start in range(0, len(hashes), chunk):
        dist = _popcount(hashes[start : start + chunk, None] ^ hashes[None, :])
        ii, jj = np.nonzero(dist <= threshold)
        keep = jj > ii + start
        ii, jj = ii[keep], jj[keep]
        found.append(np.stack([ii + start, jj, dist[ii, jj]], axis=1).astype(np.int64))
    return np.concatenate(found)


def _edges(thumbs: np.ndarray) -> np.ndarray:
    t = thumbs.astype(np.float32)
    g = np.concatenate(
        [np.diff(t, axis=2).reshape(len(t), -1), np.diff(t, axis=1).reshape(len(t), -1)], 1
    )
    g -= g.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(g, axis=1, keepdims=True)
    return g / np.where(norm > 0, norm, 1)  # flat images: zero vector, correlation 0


def edge_correlation(thumbs: np.ndarray, pairs: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Pearson correlation of the gradient maps of ``thumbs[i]`` and ``thumbs[j]`` per pair."""
    out = np.zeros(len(pairs), np.float32)
    for s in range(0, len(pairs), chunk):
        p = pairs[s : s + chunk]
        out[s : s + chunk] = (_edges(thumbs[p[:, 0]]) * _edges(thumbs[p[:, 1]])).sum(axis=1)
    return out


def _near_duplicates(items: list[_Item], splits: list[str], threshold: int) -> dict[str, Any]:
    """Like the exact counts, for contents that differ but look the same."""
    uid: dict[str, int] = {}  # digest -> id of the distinct content
    rep: list[int] = []  # item index of each distinct content
    present: dict[int, set[str]] = defaultdict(set)
    for i, it in enumerate(items):
        if not it.blank:
            u = uid.setdefault(it.digest or "", len(rep))
            if u == len(rep):
                rep.append(i)
            present[u].add(it.split)
    thumbs = np.stack([items[i].thumb for i in rep]) if rep else np.zeros((0, THUMB, THUMB))
    pairs = close_pairs(phash(thumbs), threshold) if rep else np.zeros((0, 3), np.int64)
    pairs = pairs[edge_correlation(thumbs, pairs) >= EDGE_CORRELATION]

    within: dict[str, int] = {}
    for split in splits:  # merges in a union-find = extra near copies (groups of n: n-1)
        parent = list(range(len(rep)))

        def root(x: int, parent: list[int] = parent) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        within[split] = 0
        for u, v, _ in pairs.tolist():
            if split in present[u] and split in present[v] and root(u) != root(v):
                parent[root(u)] = root(v)
                within[split] += 1

    neighbours: dict[int, set[int]] = defaultdict(set)
    for u, v, _ in pairs.tolist():
        neighbours[u].add(v)
        neighbours[v].add(u)
    across: dict[str, int] = {}
    earlier: set[int] = set()
    for i, split in enumerate(splits):
        mine = [uid[it.digest or ""] for it in items if it.split == split and not it.blank]
        if i:
            across[split] = sum(u not in earlier and bool(neighbours[u] & earlier) for u in mine)
        earlier |= set(mine)
    # Examples: pairs that straddle splits first (those inflate scores), closest first;
    # within a pair, the sample of the earlier split first.
    straddle = np.array([present[u] != present[v] for u, v, _ in pairs.tolist()], dtype=bool)
    examples = []
    for u, v, d in pairs[np.lexsort((pairs[:, 2], ~straddle))[:5]].tolist():
        a, b = sorted((items[rep[u]], items[rep[v]]), key=lambda it: splits.index(it.split))
        examples.append({"a": a.key, "a_split": a.split, "b": b.key, "b_split": b.split,
                         "distance": d})  # fmt: skip
    return {
        "near_duplicates_within": {**within, "total": sum(within.values())},
        "near_duplicates_across_splits": {**across, "total": sum(across.values())},
        "near_duplicate_pairs": len(pairs),
        "near_duplicate_examples": examples,
    }


# --- preview ----------------------------------------------------------------------
_MASK_COLOURS = ("red", "yellow", "lime", "cyan", "magenta")


def _pick(records: list[Record], n: int, seed: int) -> list[Record]:
    """``n`` random records, taken round-robin over labels so every class shows up."""
    rng = np.random.default_rng(seed)
    groups: dict[int, list[Record]] = defaultdict(list)
    for r in records:
        groups[r.label].append(r)
    queues = [list(rng.permutation(len(g))) for g in groups.values()]
    out: list[Record] = []
    while len(out) < min(n, len(records)):
        for g, q in zip(groups.values(), queues, strict=True):
            if q and len(out) < n:
                out.append(g[q.pop()])
    return out


def _display(image: np.ndarray) -> np.ndarray:
    """C x H x W float -> H x W (first channel) or H x W x 3, stretched to [0, 1].

    Percentiles of the nonzero pixels, zero kept black: BraTS slices are z-scored
    inside the brain with a 0 background, which a plain stretch would paint grey.
    """
    show = image[:3].transpose(1, 2, 0) if image.shape[0] == 3 else image[0]
    values = show[show != 0]
    if values.size == 0:
        return np.zeros_like(show)
    lo, hi = np.percentile(values, [0.5, 99.5])
    out = np.clip((show - lo) / (hi - lo), 0, 1) if hi > lo else np.ones_like(show)
    out[show == 0] = 0
    return out


def save_preview_grid(
    fmt: DatasetFormat, records: list[Record], path: str | Path, n: int = 16, seed: int = 0
) -> Path:
    """Write a PNG grid of ``n`` samples: class as title, masks filled and outlined in colour.

    Returns:
        The path written.
    """
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    chosen = _pick(records, n, seed)
    if not chosen:
        raise BrainTumorError(f"no samples to preview in {fmt.root}")
    cols = int(np.ceil(np.sqrt(len(chosen))))
    rows = int(np.ceil(len(chosen) / cols))
    fig = Figure(figsize=(2.4 * cols, 2.6 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    names = fmt.classes
    for ax, rec in zip(axes, chosen, strict=False):
        sample = fmt.load(rec)
        shown = _display(sample["image"])
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        title = names[rec.label] if 0 <= rec.label < len(names) else ""
        mask = sample.get("mask")
        for k, channel in enumerate(mask if mask is not None else []):
            if channel.any():
                colour = _MASK_COLOURS[k % len(_MASK_COLOURS)]
                # An explicit RGBA layer: a masked array + colormap bleeds when resampled.
                overlay = np.zeros((*channel.shape, 4), np.float32)
                overlay[channel > 0] = to_rgba(colour, 0.3)
                ax.imshow(overlay, interpolation="nearest")
                ax.contour(channel, levels=[0.5], colors=[colour], linewidths=0.8)
        if mask is not None and not title:
            title = "tumor" if mask.any() else "no tumor"
        name = rec.key.split("://")[-1]  # synthetic://p000/s2 -> p000/s2
        if fmt.root is not None:
            name = name.removeprefix(f"{fmt.root}/")
        ax.set_title(f"{title}\n{name[-32:]}", fontsize=7)
    legend = ", ".join(
        f"{c} {_MASK_COLOURS[k % len(_MASK_COLOURS)]}" for k, c in enumerate(fmt.mask_channels)
    )
    fig.suptitle(f"{fmt.name}" + (f"  (masks: {legend})" if legend else ""), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
