"""Torch-native versions of the two costly MONAI augmentations, same distributions.

Profiled per 5-channel 128-px item on one thread, MONAI's ``RandAffined`` took 1.5 ms
when applied (numpy affine construction, one resample per key) and
``RandGaussianNoised`` 1.3 ms (float64 numpy normals, then a copy). These classes
draw their parameters exactly as MONAI does, from the same numpy ``self.R``, so
seeding, ``Compose.set_random_state`` and the resume state in
:class:`braintumor.data.transforms.Augment` work unchanged, and do the pixel work in
torch:

- :class:`RandAffine2d`: rotation ``uniform(-r, r)`` and per-axis scale
  ``1 + uniform(-s, s)`` about the image centre, MONAI's convention (the matrix maps
  output to input pixel coordinates, so a scale above 1 shrinks the content), zero
  padding; one sampling grid shared by every key, bilinear for the image and
  nearest for the mask. Equal to MONAI ``Affine`` with the same parameters (tested).
- :class:`RandGaussianNoise`: std ``uniform(0, std)`` as MONAI's ``sample_std``; the
  normals come from a torch generator seeded from ``self.R``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, Randomizable


def _tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


class RandAffine2d(Randomizable, MapTransform):
    """Random rotation and zoom of C x H x W items; one grid for all ``keys``."""

    def __init__(
        self,
        keys: list[str],
        prob: float,
        rotate_range: float,
        scale_range: tuple[float, float],
        modes: tuple[str, ...],
        allow_missing_keys: bool = True,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(modes) != len(self.keys):
            raise ValueError("one interpolation mode per key")
        self.prob, self.rotate_range, self.scale_range = prob, rotate_range, scale_range
        self.modes = dict(zip(self.keys, modes, strict=True))

    def randomize(self, data: Any = None) -> tuple[float, tuple[float, float]] | None:
        if self.R.rand() >= self.prob:
            return None
        angle = float(self.R.uniform(-self.rotate_range, self.rotate_range))
        scales = tuple(1.0 + float(self.R.uniform(-s, s)) for s in self.scale_range)
        return angle, (scales[0], scales[1])

    @staticmethod
    def grid(height: int, width: int, angle: float, scales: tuple[float, float]) -> torch.Tensor:
        """The 1 x H x W x 2 sampling grid (``grid_sample``'s x, y order, align_corners=False).

        MONAI's matrix on centred pixel coordinates (row, col) is ``R(angle) @ S(scales)``;
        in grid_sample's normalised (x, y) = (col, row) coordinates it becomes
        ``D P A P D^-1`` with ``P`` the row/col swap and ``D = diag(2/W, 2/H)``.
        """
        c, s = math.cos(angle), math.sin(angle)
        a = np.array([[c, -s], [s, c]]) @ np.diag(scales)  # (row, col) -> (row, col)
        a = a[::-1, ::-1]  # (x, y) = (col, row)
        d = np.diag([2.0 / width, 2.0 / height])
        theta = np.zeros((1, 2, 3))
        theta[0, :, :2] = d @ a @ np.linalg.inv(d)
        return F.affine_grid(
            torch.as_tensor(theta, dtype=torch.float32), [1, 1, height, width], align_corners=False
        )

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        params = self.randomize()
        if params is None:
            return out
        grid: torch.Tensor | None = None
        for key in self.key_iterator(out):
            value = _tensor(out[key])
            if grid is None:
                grid = self.grid(value.shape[-2], value.shape[-1], *params)
            mode = self.modes[key]
            x = value.float() if mode == "nearest" or not value.is_floating_point() else value
            moved = F.grid_sample(
                x.unsqueeze(0),
                grid.to(x.dtype),
                mode=mode,
                padding_mode="zeros",
                align_corners=False,
            )[0]
            out[key] = moved.to(value.dtype)
        return out


class RandGaussianNoise(Randomizable, MapTransform):
    """Add N(0, sigma^2) noise with ``sigma ~ uniform(0, std)``, with probability ``prob``."""

    def __init__(self, keys: list[str] | str, prob: float, std: float) -> None:
        MapTransform.__init__(self, keys)
        self.prob, self.std = prob, std
        self._gen = torch.Generator()

    def randomize(self, data: Any = None) -> tuple[float, int] | None:
        if self.R.rand() >= self.prob:
            return None
        return float(self.R.uniform(0, self.std)), int(self.R.randint(2**31 - 1))

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        params = self.randomize()
        if params is None:
            return out
        sigma, seed = params
        self._gen.manual_seed(seed)
        for key in self.key_iterator(out):
            value = _tensor(out[key]).float()
            noise = torch.randn(value.shape, generator=self._gen, dtype=value.dtype)
            out[key] = value + sigma * noise
        return out
