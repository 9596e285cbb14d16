"""Every registered model: any size in, same size out, in [0, 1], trainable end to end; plus registry and padding."""

from __future__ import annotations

import pytest
import torch

from lowlight.models import ModelError, build_model, list_models, model_arguments
from lowlight.models.padding import pad_to_multiple, run_padded, size_multiple

# small widths keep the heavy published models fast enough for a per-model CPU test
TINY = {
    "llcnn": {"channels": 8, "modules": 1},
    "llcnn_small": {"channels": 8},
    "patch_transformer": {"dim": 16, "depth": 2, "heads": 2, "head_channels": 4},
    "patch_transformer_small": {"dim": 16, "heads": 2, "head_channels": 4},
    "unet_large": {"widths": (8, 8, 8, 8)},
}


def test_all_modules_registered():
    names = list_models()
    for expected in ("llcnn", "patch_transformer", "unet"):
        assert expected in names


VARIANTS = [(name, {}) for name in list_models()] + [("unet", {"global_branch": False})]


@pytest.mark.parametrize("name,extra", VARIANTS, ids=[n + ("_local" if e else "") for n, e in VARIANTS])
@pytest.mark.parametrize("in_channels", [3, 6])
def test_model_forward_backward(name, extra, in_channels):
    torch.manual_seed(0)
    model = build_model(name, in_channels=in_channels, **TINY.get(name, {}), **extra)
    model.train()
    # odd sizes that divide by no model's multiple, and brightness spanning [0, 1]
    x = torch.rand(2, in_channels, 37, 53)
    y = run_padded(model, x)
    assert y.shape == (2, 3, 37, 53)
    assert torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1
    target = torch.rand_like(y)
    (y - target).abs().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {pname} has an all-zero gradient"


@pytest.mark.parametrize("name", list_models())
def test_registered_sizes_run(name):
    """The variants as registered (the tests above shrink some for speed)."""
    model = build_model(name, in_channels=6).eval()
    with torch.inference_mode():
        y = run_padded(model, torch.rand(1, 6, 21, 30))
    assert y.shape == (1, 3, 21, 30) and torch.isfinite(y).all() and 0 <= y.min() <= y.max() <= 1


@pytest.mark.parametrize("name", list_models())
def test_model_eval_channels_last_matches(name):
    """Inference in channels_last (what checkpoints load as) gives the same numbers."""
    torch.manual_seed(0)
    model = build_model(name, in_channels=6, **TINY.get(name, {})).eval()
    x = torch.rand(1, 6, 24, 31)
    with torch.inference_mode():
        a = run_padded(model, x)
        b = run_padded(model.to(memory_format=torch.channels_last), x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_global_branch_starts_near_the_identity():
    torch.manual_seed(0)
    model = build_model("unet", in_channels=6).eval()
    scale, shift, log_gain, log_gamma = model.glob(torch.rand(2, 6, 64, 64))
    for t in (scale, shift, log_gain, log_gamma):
        assert t.abs().max() < 0.05


def test_global_branch_sees_the_context_not_the_crop():
    """Same crop, different whole-image context: the output changes (the branch has a global view)."""
    torch.manual_seed(0)
    model = build_model("unet", in_channels=6).eval()
    with torch.no_grad():
        model.glob.tone.weight.normal_(std=0.5)  # a trained branch: far from the identity
    x = torch.rand(1, 6, 32, 32)
    with torch.inference_mode():
        dark = run_padded(model, x, torch.zeros(1, 6, 64, 64))
        bright = run_padded(model, x, torch.ones(1, 6, 64, 64))
    assert (dark - bright).abs().mean() > 1e-3


def test_global_unet_needs_a_context():
    model = build_model("unet", in_channels=3)
    with pytest.raises(ValueError, match="context"):
        model(torch.rand(1, 3, 16, 16))


# --------------------------------------------------------------------------- grid artifacts

# The index of a flat grey image with Gaussian noise (std 8 levels) is 1.0-1.3: the periodogram,
# averaged over 192 rows, fluctuates by about 1/sqrt(192) around a flat spectrum. A grid that can be
# seen in a zoomed flat region gives tens (the old PixelShuffle decoder gave 20-60 on real photos).
# 3 leaves room for the spectral colouring a smoothing network adds, and is far below a visible grid.
GRID_THRESHOLD = 3.0


def _flat_noisy(seed: int = 0, size: int = 192) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    grey = 0.35 + 0.03 * torch.randn(1, 1, size, size, generator=g)
    return (grey.expand(1, 3, size, size) + 0.01 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1)


def _grid_of(model, x: torch.Tensor) -> float:
    from lowlight.evaluation.periodic import GRID_PERIODS, grid_index

    with torch.inference_mode():  # float output: 8-bit rounding of a near-flat image adds its own structure
        y = run_padded(model.eval(), x)[0].permute(1, 2, 0).numpy() * 255
    periods = sorted(set(GRID_PERIODS) | {size_multiple(model)} - {1})
    return grid_index(y, periods=tuple(p for p in periods if p <= 16))


def _few_steps(model, in_channels: int, steps: int = 8) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # the shipped weights' learning rate
    model.train()
    for i in range(steps):
        x = _flat_noisy(100 + i, size=64)
        x = torch.cat([x, (x * 2).clamp(0, 1)], dim=1)[:, :in_channels]
        target = (x[:, -3:] * 1.5).clamp(0, 1)  # brighter, same structure
        loss = (run_padded(model, x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


class _PixelShuffleNet(torch.nn.Module):
    """A deliberately gridded model (random sub-pixel weights): proves the test can fail."""

    size_multiple = 2

    def __init__(self, in_channels: int):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.PixelUnshuffle(2), torch.nn.Conv2d(4 * in_channels, 12, 3, padding=1),
                                        torch.nn.PixelShuffle(2))

    def forward(self, x):
        return torch.sigmoid(self.body(x))


def test_grid_index_catches_a_sub_pixel_grid():
    torch.manual_seed(0)
    assert _grid_of(_PixelShuffleNet(3), _flat_noisy()) > 10 * GRID_THRESHOLD / 3


@pytest.mark.parametrize("name", list_models())
def test_no_grid_at_init_and_after_training_steps(name):
    torch.manual_seed(0)
    model = build_model(name, in_channels=6, **TINY.get(name, {}))
    x = _flat_noisy()
    x6 = torch.cat([x, (x * 2).clamp(0, 1)], dim=1)
    at_init = _grid_of(model, x6)
    _few_steps(model, 6)
    trained = _grid_of(model, x6)
    assert at_init < GRID_THRESHOLD and trained < GRID_THRESHOLD, (at_init, trained)


def test_unknown_model_lists_registered_names():
    with pytest.raises(ModelError) as err:
        build_model("resnet9000")
    msg = str(err.value)
    assert "resnet9000" in msg
    for name in list_models():
        assert name in msg


def test_unknown_argument_lists_allowed_ones():
    with pytest.raises(ModelError) as err:
        build_model("unet", in_channels=6, widht=(8, 16))
    msg = str(err.value)
    assert "'widht'" in msg and "widths" in msg and "in_channels" in msg
    assert model_arguments("unet_small") == model_arguments("unet")


def test_bad_argument_value_names_model():
    with pytest.raises(ModelError, match="patch_transformer"):
        build_model("patch_transformer", dim=30, heads=4)


def test_variant_defaults_and_overrides():
    small = build_model("unet_small", in_channels=3)
    assert small.model_name == "unet_small" and small.model_args == {"in_channels": 3}
    assert size_multiple(small) == 8
    wide = build_model("unet_small", widths=[8, 8])
    assert size_multiple(wide) == 4
    assert size_multiple(build_model("patch_transformer", patch_size=7, dim=16, heads=2)) == 7
    assert size_multiple(build_model("llcnn", channels=4, modules=1)) == 1


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 6, 8, 8), (1, 3, 5, 3)])
@pytest.mark.parametrize("multiple", [1, 4, 10])
def test_padding_round_trip(shape, multiple):
    x = torch.rand(*shape)
    xp, (h, w) = pad_to_multiple(x, multiple)
    assert (h, w) == shape[-2:]
    assert xp.shape[-2] % multiple == 0 and xp.shape[-1] % multiple == 0
    assert xp.shape[-2] - h < multiple and xp.shape[-1] - w < multiple
    torch.testing.assert_close(xp[..., :h, :w], x)


def test_padding_reflects():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    xp, _ = pad_to_multiple(x, 5)
    # reflection mirrors without repeating the edge row/column
    assert xp[0, 0, 3].tolist() == x[0, 0, 1].tolist() + [x[0, 0, 1, 2].item()]
    assert xp[0, 0, 0, 4] == x[0, 0, 0, 2]


def test_run_padded_crops_back():
    class Shift(torch.nn.Module):
        size_multiple = 8

        def forward(self, x):
            assert x.shape[-1] % 8 == 0 and x.shape[-2] % 8 == 0
            return x[:, :3] * 0.5

    x = torch.rand(1, 6, 13, 21)
    y = run_padded(Shift(), x)
    torch.testing.assert_close(y, x[:, :3] * 0.5)


def test_context_in_bands_equals_the_whole_image_context():
    import numpy as np

    from lowlight.models.context import image_context, image_context_uint8

    img = np.random.default_rng(0).integers(0, 256, (333, 517, 6), dtype=np.uint8)
    whole = image_context(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)
    torch.testing.assert_close(image_context_uint8(img, band_rows=50), whole, atol=1e-6, rtol=0)
