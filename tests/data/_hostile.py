"""Writers for hostile files: what a header claims differs from what a scan can be."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def png_bomb(path: Path, width: int, height: int, rows: int | None = None) -> Path:
    """A grayscale PNG of ``width x height`` zeros: tiny on disk, huge decoded.

    ``rows`` < height writes only that many rows (a header-only bomb: readers that
    check the declared size never notice, and writing it takes no time).
    """
    row = b"\x00" * (width + 1)  # filter byte + pixels
    comp = zlib.compressobj(9)
    n = height if rows is None else rows
    data = b"".join(comp.compress(row) for _ in range(n)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


def tiff_with_size(path: Path, width: int, height: int) -> Path:
    """A 1 x 1 TIFF whose header is edited to declare ``width x height``."""
    import tifffile

    tifffile.imwrite(path, np.zeros((1, 1), np.uint8))
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        for code, value in ((256, width), (257, height)):
            tag = tags[code]
            struct.pack_into("<H" if tag.dtype == 3 else "<I", raw, tag.valueoffset, value)
    path.write_bytes(bytes(raw))
    return path


def nifti_with_affine_row(path: Path, row: list[float], shape: tuple[int, ...] = (4, 4, 4)) -> Path:
    """A NIfTI whose sform's first row is ``row`` (nibabel refuses to write such affines)."""
    import nibabel as nib

    img = nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4))
    header = img.header
    header.set_sform(np.eye(4), code=1)
    header.set_qform(np.eye(4), code=0)
    header["srow_x"] = row
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), None, header=header), path)
    return path
