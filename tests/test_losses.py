"""Losses, and the torch SSIM against scikit-image's reference implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from lowlight.training.losses import LOSSES, SSIM, build_loss, psnr, ssim


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, channel_axis=-1)


@pytest.mark.parametrize("shape,noise", [((37, 53, 3), 40), ((11, 11, 3), 10), ((64, 48, 3), 120)])
def test_ssim_matches_skimage(shape, noise):
    rng = np.random.default_rng(sum(shape) + noise)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    got = float(ssim(_t(a).float(), _t(b).float()))
    assert got == pytest.approx(_skimage_ssim(a, b), abs=2e-5)


def test_ssim_per_image_and_identity(photo):
    dim = np.round(photo * 0.8).astype(np.uint8)
    x, y = _t(photo).float(), _t(dim).float()
    per = SSIM()(torch.cat([x, x]), torch.cat([x, y]), reduction="none")
    assert per.shape == (2,)
    assert float(per[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(per[1]) == pytest.approx(_skimage_ssim(photo, dim), abs=2e-5)
    assert float(per[1]) < 0.999


def test_ssim_gradient_flows():
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    (1 - ssim(x, torch.rand(1, 3, 16, 16))).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ssim_rejects_small_or_mismatched():
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(1, 3, 10, 30), torch.rand(1, 3, 10, 30))
    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.rand(1, 3, 20, 30), torch.rand(1, 3, 20, 31))


def test_psnr_db_scale():
    x = torch.zeros(2, 3, 4, 4)
    y = torch.full((2, 3, 4, 4), 0.1)
    assert float(psnr(x, y)) == pytest.approx(20.0, abs=1e-4)
    assert psnr(x, y, reduction="none").shape == (2,)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_prefer_the_target(name):
    torch.manual_seed(0)
    target = torch.rand(2, 3, 24, 24)
    near = (target + 0.02 * torch.randn_like(target)).clamp(0, 1)
    far = (target + 0.2 * torch.randn_like(target)).clamp(0, 1)
    loss = build_loss(name)
    assert torch.isfinite(loss(near, target))
    assert loss(near, target) < loss(far, target)
    pred = far.clone().requires_grad_(True)
    loss(pred, target).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_losses_in_float32_under_half_inputs():
    target = torch.rand(1, 3, 16, 16)
    out = build_loss("l1_ssim")(target.half(), target)
    assert out.dtype == torch.float32


def test_unknown_loss():
    with pytest.raises(ValueError, match="mse_mae"):
        build_loss("perceptual")


def test_the_color_term_sees_global_brightness_and_colour_only():
    from lowlight.training.losses import build_loss, mean_color

    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16)
    shuffled = target.flatten(2)[..., torch.randperm(256)].view_as(target)  # same means, other pixels
    assert float(mean_color(shuffled, target)) < 1e-6
    brighter = target + torch.tensor([0.1, 0.0, -0.05]).view(1, 3, 1, 1)
    assert abs(float(mean_color(brighter, target)) - 0.05) < 1e-5  # mean of |0.1|, 0, |-0.05|
    plain, with_color = build_loss("l1_ssim"), build_loss("l1_ssim", color_weight=2.0)
    assert abs(float(with_color(brighter, target) - plain(brighter, target)) - 0.1) < 1e-5
    assert build_loss("l1_ssim", 0.0) is plain


def test_loss_names_have_one_list():
    from lowlight.config import LOSS_NAMES, TrainConfig, from_dict

    assert tuple(LOSSES) == LOSS_NAMES  # config.LOSS_NAMES is what params.yaml may name
    for name in LOSS_NAMES:
        assert from_dict(TrainConfig, {"loss": name}).loss == name
