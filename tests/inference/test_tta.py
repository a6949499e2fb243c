"""Flip TTA maps each output back onto the input's pixels before averaging."""

from __future__ import annotations

import torch

from braintumor.inference.tta import flip_tta


def test_flip_tta_unflips_segmentation_outputs() -> None:
    # A "model" that marks the left half of whatever it sees: on the flipped image it
    # marks the right half of the original, so un-flipped and averaged -> 0.5 everywhere.
    def left_half(x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x[:, :1])
        out[..., : x.shape[-1] // 2] = 1.0
        return out

    x = torch.rand(2, 3, 4, 6)
    assert torch.allclose(flip_tta(left_half, x), torch.full((2, 1, 4, 6), 0.5))

    # An equivariant model (the identity on channel 0) is unchanged by TTA.
    def ident(t: torch.Tensor) -> torch.Tensor:
        return t[:, :1]

    assert torch.allclose(flip_tta(ident, x), x[:, :1])
    # Without un-flipping (spatial=False) the identity would average to a mirror blend.
    assert not torch.allclose(flip_tta(ident, x, spatial=False), x[:, :1])


def test_flip_tta_averages_class_probabilities() -> None:
    calls: list[torch.Tensor] = []

    def probs(t: torch.Tensor) -> torch.Tensor:
        calls.append(t)
        return torch.tensor([[0.2, 0.8]]) if len(calls) == 1 else torch.tensor([[0.6, 0.4]])

    out = flip_tta(probs, torch.rand(1, 1, 3, 3), spatial=False)
    assert torch.allclose(out, torch.tensor([[0.4, 0.6]]))
    assert torch.equal(calls[1], torch.flip(calls[0], (-1,)))
