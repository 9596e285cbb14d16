"""The export: network and booster to ONNX, checked against PyTorch + XGBoost, written all or nothing;
and the runtime's refusals (missing, corrupt or foreign .onnx files). Tiny models made in the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lowlight.config import QuantilesConfig
from lowlight.export import check
from lowlight.export.booster_onnx import booster_to_onnx
from lowlight.export.pair import export_pair
from lowlight.histbranch.quantile_features import features
from lowlight.histbranch.quantiles import QuantileModel
from lowlight.inference.enhancer import EnhanceError, Enhancer
from lowlight.inference.network_input import image_context, padded_chw
from lowlight.inference.onnx_models import OnnxBooster, open_session
from lowlight.models import build_model
from lowlight.models.checkpoint import save_checkpoint

from conftest import REPO, darken, load_stage, synthetic_photo, write_prepared


def _pairs(n=4, shape=(40, 56)):
    highs = [synthetic_photo(*shape, seed=s) for s in range(n)]
    return [(darken(h, 0.05 + 0.02 * (s % 3), seed=s), h) for s, h in enumerate(highs)]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny booster and a tiny registry network (random weights are enough for equivalence)."""
    root = tmp_path_factory.mktemp("fitted")
    lows, highs = zip(*_pairs(8))
    qm = QuantileModel(QuantilesConfig(n_estimators=6)).fit(list(lows), list(highs), seed=0, threads=1)
    torch.manual_seed(0)
    net = build_model("unet_small", in_channels=6).eval()
    return qm.save(root / "q.ubj"), save_checkpoint(root / "net.pt", net, inputs="low+mapped",
                                                    params={"train": {"exposure_anchor": 0.5}})


@pytest.fixture(scope="module")
def exported(fitted, tmp_path_factory) -> tuple[Path, Path, dict]:
    out = tmp_path_factory.mktemp("onnx")
    figures = export_pair(fitted[1], fitted[0], out / "model.onnx", out / "quantiles.onnx", _pairs)
    return out / "quantiles.onnx", out / "model.onnx", figures


def test_exported_pair_reproduces_the_pipeline(fitted, exported):
    q_onnx, n_onnx, figures = exported
    assert figures["n_images"] == 4
    assert figures["share_within_1_level"] >= check.MIN_SHARE_WITHIN
    assert abs(figures["psnr_delta"]) <= check.MAX_PSNR_DELTA
    ort_enh, ref = Enhancer.from_files(q_onnx, n_onnx), Enhancer.from_files(*fitted)
    assert ort_enh.network.runtime == "onnxruntime" and ref.network.runtime == "torch"
    assert ort_enh.exposure_anchor == ref.exposure_anchor == 0.5 and ort_enh.inputs == "low+mapped"
    for shape in [(1, 1), (7, 5), (37, 53), (70, 130)]:  # dynamic H x W, padding, tiny images
        low = darken(synthetic_photo(*shape, seed=9), 0.05) if min(shape) > 1 else np.full((*shape, 3), 9, np.uint8)
        assert np.abs(ort_enh(low).astype(int) - ref(low).astype(int)).max() <= 1, shape


@pytest.mark.parametrize("strategy", ["one_output_per_tree", "multi_output_tree"])
def test_booster_graph_gives_xgboosts_raw_outputs(strategy):
    import onnxruntime as ort

    lows, highs = zip(*_pairs(6))
    cfg = QuantilesConfig(n_estimators=4, strategy=strategy, grid=2)
    qm = QuantileModel(cfg).fit(list(lows), list(highs), seed=0, threads=1)
    proto = booster_to_onnx(json.loads(qm.booster.save_raw("json")), qm._meta())
    booster = OnnxBooster(ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]))
    x = features(list(lows), cfg).reshape(-1, len(qm._meta()["feature_names"]))
    np.testing.assert_allclose(booster.inplace_predict(x), qm.booster.inplace_predict(x), atol=1e-4)


@pytest.mark.parametrize("shape", [(64, 64), (65, 97), (400, 600), (30, 200), (5, 3)])
def test_numpy_input_is_the_training_sides(shape):
    from lowlight.models.context import image_context_uint8
    from lowlight.models.padding import pad_to_multiple

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(2))
    want = torch.cat([image_context_uint8(a), image_context_uint8(b)], dim=1).numpy()
    np.testing.assert_allclose(image_context([a, b]), want, atol=2e-6)
    x = torch.from_numpy(np.concatenate([a, b], axis=2)).permute(2, 0, 1)[None].float().div_(255)
    assert np.array_equal(padded_chw([a, b], 8), pad_to_multiple(x, 8)[0].numpy())


def test_a_failed_check_writes_nothing(fitted, tmp_path, monkeypatch):
    monkeypatch.setattr(check, "MIN_SHARE_WITHIN", 1.01)  # no export can pass
    with pytest.raises(check.ExportCheckError, match="within 1 level.*nothing was written"):
        export_pair(fitted[1], fitted[0], tmp_path / "model.onnx", tmp_path / "quantiles.onnx", _pairs)
    assert list(tmp_path.iterdir()) == []  # neither file, no temporary left


def test_export_stage_on_a_prepared_dataset(fitted, tmp_path):
    data = write_prepared(tmp_path / "prepared", counts={"train": 2, "val": 3, "test": 0})
    out = tmp_path / "models"
    load_stage("export").main(["--params", str(REPO / "params.yaml"), "--data", str(data),
                               "--quantile-model", str(fitted[0]), "--checkpoint", str(fitted[1]),
                               "--network-out", str(out / "model.onnx"), "--quantiles-out", str(out / "q.onnx"),
                               "--metrics", str(tmp_path / "export.json")])
    figures = json.loads((tmp_path / "export.json").read_text())
    assert figures["n_images"] == 3 and figures["share_within_1_level"] >= 0.999
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "q.onnx"]


def test_missing_corrupt_and_foreign_files_are_one_line(exported, tmp_path):
    q_onnx, n_onnx, _ = exported
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(n_onnx.read_bytes()[:300])
    cases = [((q_onnx, tmp_path / "gone.onnx"), "gone.onnx: network file does not exist"),
             ((q_onnx, corrupt), "corrupt.onnx: not a readable ONNX network"),
             ((n_onnx, n_onnx), "not lowlight's ONNX quantile model"),  # the network given as the booster
             ((q_onnx, q_onnx), "not lowlight's ONNX network")]
    for files, message in cases:
        with pytest.raises(EnhanceError, match=message) as err:
            Enhancer.from_files(*files)
        assert "\n" not in str(err.value) and "dvc repro export" in str(err.value)


def test_a_network_of_another_version_is_refused(exported, tmp_path):
    import onnx

    q_onnx, n_onnx, _ = exported
    proto = onnx.load(n_onnx)
    proto.graph.input[1].name = "thumbnail"  # what an older or newer export might call its context
    for node in proto.graph.node:
        node.input[:] = ["thumbnail" if i == "context" else i for i in node.input]
    other = tmp_path / "other.onnx"
    onnx.save(proto, other)
    with pytest.raises(EnhanceError, match=r"another version of lowlight.*\['input', 'thumbnail'\]"):
        Enhancer.from_files(q_onnx, other)


def test_cli_reports_a_bad_onnx_file_in_one_line(exported, tmp_path):
    q_onnx, _, _ = exported
    src = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(synthetic_photo(20, 30)).save(src)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    done = subprocess.run([sys.executable, "-m", "lowlight", "enhance", str(src), "-o", str(tmp_path / "out"),
                           "--quantile-model", str(q_onnx), "--weights", str(bad)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.onnx" in lines[0] and "dvc repro export" in lines[0], done.stderr


def test_the_tool_side_imports_neither_torch_nor_xgboost(exported):
    """What enhances runs with torch and XGBoost made unimportable, as in a plain install."""
    q_onnx, n_onnx, _ = exported
    code = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "xgboost", "scipy"):
            raise ImportError(name)
sys.meta_path.insert(0, Refuse())
import numpy as np
import lowlight
from lowlight.cli import main
from lowlight.inference.enhancer import Enhancer
enh = Enhancer.from_files({str(q_onnx)!r}, {str(n_onnx)!r})
img = (np.random.default_rng(0).random((50, 70, 3)) * 40).astype(np.uint8)
assert lowlight.enhance(img, enhancer=enh).shape == img.shape
lowlight.enhance(img)  # the shipped pair
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_cuda_without_its_provider_says_so(monkeypatch):
    import onnxruntime

    from lowlight.inference.settings import providers_for, resolve_device

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(EnhanceError, match="no CUDA provider.*onnxruntime-gpu"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu" and providers_for("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert providers_for("cuda:1")[0] == ("CUDAExecutionProvider", {"device_id": 1})


def test_cpu_sessions_flush_denormals(exported):
    session, _ = open_session(exported[1], "network", "lowlight.network.onnx/1")
    assert session.get_session_options().get_session_config_entry("session.set_denormal_as_zero") == "1"


def test_tiles_on_onnx_runtime_match_pytorchs(fitted, exported):
    import dataclasses

    ort_enh, ref = Enhancer.from_files(*exported[:2]), Enhancer.from_files(*fitted)
    low = darken(synthetic_photo(150, 200, seed=4), 0.05)
    tiled = [dataclasses.replace(e, tile_pixels=1, tile=64, overlap=16)(low) for e in (ort_enh, ref)]
    assert np.abs(tiled[0].astype(int) - tiled[1].astype(int)).max() <= 1


@pytest.mark.parametrize("w, h", [(4240, 2832), (6000, 4000), (2600, 1700)])
def test_tiles_cover_a_photo_with_little_rerun(w, h):
    """Near-equal tiles: the pixels the network runs on exceed the photo's by the overlaps alone."""
    from lowlight.inference.tiles import OVERLAP, TILE, even_tile, tile_starts

    m = 8
    sides = []
    for n in (h + -h % m, w + -w % m):
        side = even_tile(n, TILE, OVERLAP, m)
        starts = tile_starts(n, side, OVERLAP)
        assert side <= TILE + m and starts[-1] + side == n
        sides.append(len(starts) * side)
    assert sides[0] * sides[1] / (w * h) < 1.08


def test_big_photos_get_a_tile_progress_bar(capsys):
    from lowlight.cli.tile_progress import TileBar

    bar = TileBar()
    for done in range(1, 5):
        bar(done, 4)
    err = capsys.readouterr().err
    assert bar.bar is None and "big photo" in err and "/4" in err  # shown, then closed (leave=False)
    quiet = TileBar(disable=True)
    quiet(1, 4)
    assert quiet.bar is None
