"""Loss registry: every loss trains, matches MONAI/torch where it should, and rejects bad input."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceLoss, FocalLoss, TverskyLoss
from torch.nn import functional as F

from braintumor.errors import ConfigError, UnknownNameError
from braintumor.losses import LOSSES, create_loss, list_losses

SEG_LOSSES = [n for n in LOSSES.names() if n != "cross_entropy"]


def _square_mask(channels: int = 1) -> torch.Tensor:
    t = torch.zeros(2, channels, 16, 16)
    t[0, :, 4:10, 3:9] = 1
    t[1, -1, 8:14, 6:15] = 1  # image 1: only the last channel has foreground
    return t


def test_registry_names_and_descriptions() -> None:
    expected = {"cross_entropy", "bce", "dice", "dice_bce", "mse", "focal", "tversky"}
    assert expected | {"focal_tversky"} == set(LOSSES.names())
    assert all(list_losses().values())


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="dice_bce"):
        create_loss("dice_loss")
    with pytest.raises(ConfigError, match="multilabel"):
        create_loss("dice", mode="softmax")


@pytest.mark.parametrize("name", SEG_LOSSES)
@pytest.mark.parametrize("mode", ["binary", "multilabel", "multiclass"])
def test_every_loss_overfits_a_fixed_mask(name: str, mode: str) -> None:
    torch.manual_seed(0)
    fg = 1 if mode == "binary" else 2
    target = _square_mask(fg)
    if mode == "multiclass":  # exclusive labels: channel 0 and 1 must not overlap
        target[:, 0] *= 1 - target[:, 1]
    out_ch = fg + 1 if mode == "multiclass" else fg
    logits = torch.zeros(2, out_ch, 16, 16).normal_(0, 0.1).requires_grad_()
    loss_fn = create_loss(name, mode=mode)
    opt = torch.optim.Adam([logits], lr=0.2)
    first = loss_fn(logits, target).item()
    for _ in range(80):  # batch Dice on an all-empty channel needs ~60 steps
        opt.zero_grad()
        loss = loss_fn(logits, target)
        loss.backward()
        opt.step()
    last = loss_fn(logits, target).item()
    assert last < 0.5 * first, f"{name}/{mode}: {first:.4f} -> {last:.4f}"
    pred = logits.argmax(1) if mode == "multiclass" else logits > 0
    if mode == "multiclass":  # compare with the index map (0 = background)
        truth = torch.cat([1 - target.amax(1, keepdim=True), target], 1).argmax(1)
    else:
        truth = target.bool()
    assert (pred == truth).float().mean() > 0.99


def test_tiny_conv_net_learns_with_dice_bce() -> None:
    torch.manual_seed(0)
    target = _square_mask(1)
    image = target * 2 - 1 + 0.3 * torch.randn_like(target)  # noisy copy of the mask
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1)
    )
    loss_fn = create_loss("dice_bce", mode="binary")
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    first = loss_fn(net(image), target).item()
    for _ in range(30):
        opt.zero_grad()
        loss_fn(net(image), target).backward()
        opt.step()
    assert loss_fn(net(image), target).item() < 0.5 * first


def test_cross_entropy_trains_and_matches_torch() -> None:
    torch.manual_seed(0)
    y = torch.tensor([0, 2, 1, 1])
    w = [1.0, 2.0, 0.5]
    logits = torch.randn(4, 3)
    loss = create_loss("cross_entropy", class_weights=w, label_smoothing=0.1)(logits, y)
    ref = F.cross_entropy(logits, y, weight=torch.tensor(w), label_smoothing=0.1)
    assert torch.allclose(loss, ref)
    logits.requires_grad_()
    fn = create_loss("cross_entropy")
    opt = torch.optim.Adam([logits], lr=0.2)
    first = fn(logits, y).item()
    for _ in range(30):
        opt.zero_grad()
        fn(logits, y).backward()
        opt.step()
    assert fn(logits, y).item() < 0.2 * first


def test_matches_monai_and_torch() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 8)
    t = (torch.rand(2, 3, 8, 8) > 0.6).float()
    ml = dict(mode="multilabel")
    s = dict(smooth_nr=1.0, smooth_dr=1.0, batch=True)  # overlap losses pool the batch
    assert torch.allclose(create_loss("dice", **ml)(x, t), DiceLoss(sigmoid=True, **s)(x, t))
    tv = TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7, **s)(x, t)
    assert torch.allclose(create_loss("tversky", **ml)(x, t), tv)
    assert torch.allclose(create_loss("focal", **ml)(x, t), FocalLoss(gamma=2.0)(x, t))
    assert torch.allclose(create_loss("bce", **ml)(x, t), F.binary_cross_entropy_with_logits(x, t))
    assert torch.allclose(create_loss("mse", **ml)(x, t), F.mse_loss(x.sigmoid(), t))
    # multiclass: softmax over channels, background (channel 0) left out of Dice
    idx = torch.randint(0, 3, (2, 8, 8))
    onehot = F.one_hot(idx, 3).movedim(-1, 1).float()
    dice_mc = DiceLoss(softmax=True, include_background=False, **s)(x, onehot)
    assert torch.allclose(create_loss("dice", mode="multiclass")(x, onehot), dice_mc)
    assert torch.allclose(create_loss("bce", mode="multiclass")(x, idx), F.cross_entropy(x, idx))


def test_multiclass_target_forms_agree() -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 3, 8, 8)
    idx = torch.randint(0, 3, (2, 8, 8))
    onehot = F.one_hot(idx, 3).movedim(-1, 1).float()
    for name in SEG_LOSSES:
        fn = create_loss(name, mode="multiclass")
        full, fg_only, index = fn(x, onehot), fn(x, onehot[:, 1:]), fn(x, idx)
        assert torch.allclose(full, fg_only) and torch.allclose(full, index), name


def test_empty_truth_and_empty_prediction_costs_nothing() -> None:
    logits = torch.full((1, 1, 8, 8), -30.0)
    target = torch.zeros(1, 1, 8, 8)
    for name in ("dice", "tversky", "focal_tversky"):
        assert create_loss(name)(logits, target).item() < 1e-4, name


def test_class_weights_select_channels() -> None:
    torch.manual_seed(3)
    t = _square_mask(2)
    x1, x2 = torch.randn(2, 2, 16, 16), torch.randn(2, 2, 16, 16)
    x2[:, 0] = x1[:, 0]  # differ only in channel 1
    for name in SEG_LOSSES:
        fn = create_loss(name, mode="multilabel", class_weights=[1.0, 0.0])
        assert torch.allclose(fn(x1, t), fn(x2, t)), name
        plain = create_loss(name, mode="multilabel")
        assert not torch.allclose(plain(x1, t), plain(x2, t)), name
    with pytest.raises(ConfigError, match="class_weights has 3 values"):
        create_loss("dice", mode="multilabel", class_weights=[1, 1, 1])(x1, t)
    with pytest.raises(ConfigError, match="non-negative"):
        create_loss("dice", class_weights=[-1.0])


def test_label_smoothing() -> None:
    logits = torch.full((1, 1, 4, 4), 8.0)
    t = torch.ones(1, 1, 4, 4)
    plain = create_loss("bce")(logits, t)
    smooth = create_loss("bce", label_smoothing=0.2)(logits, t)
    assert smooth > plain + 0.5  # a confident prediction is now penalised
    with pytest.raises(ConfigError, match="does not use label_smoothing"):
        create_loss("dice", label_smoothing=0.1)


def test_bad_shapes_are_reported() -> None:
    with pytest.raises(ConfigError, match="multilabel"):
        create_loss("dice", mode="binary")(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="does not match"):
        create_loss("dice", mode="multilabel")(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))


def test_segmentation_losses_accept_classification_logits() -> None:
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    assert torch.allclose(
        create_loss("bce", mode="multiclass")(logits, y), F.cross_entropy(logits, y)
    )
    assert torch.isfinite(create_loss("focal", mode="multiclass")(logits, y))


def test_multiclass_full_target_must_be_one_hot() -> None:
    with pytest.raises(ConfigError, match="must be one-hot, background first"):
        create_loss("dice", mode="multiclass")(torch.randn(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


def test_deep_supervision_loss_weights_each_output_against_the_resized_mask() -> None:
    from braintumor.losses import deep_supervision_loss

    loss = create_loss("dice_bce", mode="binary")
    target = _square_mask()
    torch.manual_seed(0)
    outs = [torch.randn(2, 1, 16, 16), torch.randn(2, 1, 8, 8), torch.randn(2, 1, 4, 4)]
    # One output: exactly the wrapped loss.
    assert torch.allclose(deep_supervision_loss(loss, outs[:1], target), loss(outs[0], target))
    # Three: weights 4/7, 2/7, 1/7 (nnU-Net's 1, 1/2, 1/4 normalised), mask sampled nearest.
    half = target[:, :, 1::2, 1::2]
    quarter = target[:, :, 2::4, 2::4]
    want = (4 * loss(outs[0], target) + 2 * loss(outs[1], half) + loss(outs[2], quarter)) / 7
    assert torch.allclose(deep_supervision_loss(loss, outs, target), want)
    assert set(torch.unique(half).tolist()) == {0.0, 1.0}
    # A B x H x W index map (multiclass) stays an index map of the output's size.
    ce = create_loss("bce", mode="multiclass")
    index = (target[:, 0] * 2).long()
    logits = [torch.randn(2, 3, 16, 16), torch.randn(2, 3, 8, 8)]
    want = (2 * ce(logits[0], index) + ce(logits[1], index[:, 1::2, 1::2])) / 3
    assert torch.allclose(deep_supervision_loss(ce, logits, index), want)
