"""Built-in data set formats; importing this module registers them all."""

from __future__ import annotations

from braintumor.data.formats import (  # noqa: F401
    brain_tumor_mri,
    brats,
    brats_h5,
    busi,
    figshare,
    image_folder,
    lgg,
    synthetic,
)
