"""Nickparvar's "Brain Tumor MRI Dataset" (Kaggle): 4-class classification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from braintumor.data.formats.image_folder import SPLIT_FOLDERS, ImageFolderFormat
from braintumor.data.registry import FORMATS
from braintumor.errors import DataError


@FORMATS.register()
class BrainTumorMRIFormat(ImageFolderFormat):
    """``<root>/Training|Testing/<class>/*.jpg`` with classes glioma, meningioma,
    notumor, pituitary (the sorted folder names).

    ``Record.split`` is ``"train"`` or ``"test"`` from the top folder, so the
    official test set is kept. The set has no patient ids (it merges Figshare, SARTAJ
    and Br35H), so every image is its own "patient"; slices of one person can end up
    on both sides of a split, and the set even holds byte-identical images in
    Training and Testing (``braintumor inspect`` reports them). Images are a mix
    of RGB and grayscale JPEGs of gray scans; all are loaded as one channel.
    """

    name = "brain-tumor-mri"
    description = (
        "Nickparvar Brain Tumor MRI: Training|Testing/<glioma|meningioma|notumor|pituitary>"
    )
    default_options: dict[str, Any] = {}
    layout_hint = "<root>/Training/<class>/*.jpg and <root>/Testing/<class>/*.jpg"

    @property
    def natural_channels(self) -> int:
        return 1

    def _split_folders(self) -> list[tuple[str | None, Path]]:
        folders = super()._split_folders()
        if any(split is None for split, _ in folders):
            assert self.root is not None
            hint = ""
            if self.root.name.lower() in SPLIT_FOLDERS:
                hint = f" (use the folder above it, {self.root.parent})"
            raise DataError(
                f"{self.root} has no Training/ or Testing/ folder{hint}; "
                f"expected {self.layout_hint}"
            )
        return folders
