"""The bounds of the HTTP service, in one place (``serve`` options set them).

Kept free of web imports so that the CLI can build it without loading FastAPI; the
gates that enforce the bounds are in :mod:`braintumor.serve.gates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MULTIPART_SLACK", "ServiceLimits", "size_text"]

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_SLACK = 64 * 1024


@dataclass(frozen=True)
class ServiceLimits:
    """Bounds of the service (defaults fit a 2-core machine with a few GB of memory)."""

    max_upload_bytes: int = 20 * 1024 * 1024
    # 4096 x 4096: above any MRI slice; a decoded image stays below ~200 MB as float32.
    max_pixels: int = 4096 * 4096
    max_voxels: int = 256 * 256 * 256
    read_timeout_s: float = 30.0  # longest wait for the next piece of an upload
    max_uploads: int = 64  # request bodies being received at once
    max_inference: int = 2  # decodes + predictions at once
    max_queue: int = 64  # requests waiting for one of those slots

    def describe(self) -> dict[str, Any]:
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_pixels": self.max_pixels,
            "max_voxels": self.max_voxels,
            "read_timeout_s": self.read_timeout_s,
            "max_uploads": self.max_uploads,
            "max_inference": self.max_inference,
            "max_queue": self.max_queue,
        }


def size_text(n: int) -> str:
    return f"{n / 2**20:.3g} MB" if n >= 2**20 else f"{n / 1024:.3g} KB"
