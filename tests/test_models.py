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


VARIANTS = [(name, {}) for name in list_models()] + [("unet", {"residual": True})]


@pytest.mark.parametrize("name,extra", VARIANTS, ids=[n + ("_residual" if e else "") for n, e in VARIANTS])
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


def test_residual_unet_starts_near_its_base_image():
    torch.manual_seed(0)
    model = build_model("unet", in_channels=6, residual=True).eval()
    x = torch.rand(1, 6, 32, 48)
    with torch.no_grad():
        y = run_padded(model, x)
    # small initial residual: the untrained net is close to the mapped image (last 3 channels)
    assert (y - x[:, 3:]).abs().mean() < 0.05


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
