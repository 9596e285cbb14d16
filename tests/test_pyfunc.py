"""The enhancer as an MLflow pyfunc model gives the pixels ``lowlight enhance`` gives,
loaded in-process and served over HTTP (a throwaway MLflow store in tmp_path)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import darken, synthetic_photo

mlflow = pytest.importorskip("mlflow")

from lowlight.inference.enhancer import default_weights  # noqa: E402
from lowlight.inference.pyfunc import decode_image, encode_image, log_enhancer_model  # noqa: E402


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A throwaway sqlite store with its artifacts under tmp_path; the tracking URI is put back after."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(sys, "path", list(sys.path))  # loading a model prepends its code folder
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("pyfunc-test", artifact_location=(tmp_path / "artifacts").as_uri())
    try:
        yield uri, exp
    finally:
        if mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


def _logged_model(exp: str) -> str:
    qm, net = default_weights()
    with mlflow.start_run(experiment_id=exp):
        info = log_enhancer_model(qm, net)
    return info.model_uri


def _inputs(folder: Path) -> tuple[Path, Path]:
    """A dark 40 x 56 PNG and a dark JPEG, generated."""
    folder.mkdir()
    png, jpg = folder / "a.png", folder / "b.jpg"
    Image.fromarray(darken(synthetic_photo(40, 56, seed=3), factor=0.08, seed=3)).save(png)
    Image.fromarray(darken(synthetic_photo(40, 56, seed=4), factor=0.12, seed=4)).save(jpg, quality=90)
    return png, jpg


def _cli(src: Path, out: Path, *extra: str) -> Path:
    env = dict(os.environ, LOWLIGHT_MLFLOW="0")
    done = subprocess.run([sys.executable, "-m", "lowlight", "enhance", str(src), "-o", str(out), "-q", *extra],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    suffix = ".png" if "png" in extra else src.suffix
    result = out / (src.stem + suffix)
    assert result.is_file(), (done.stderr, list(out.iterdir()))
    return result


def _rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


def test_pyfunc_model_gives_the_cli_pixels(store, tmp_path):
    import pandas as pd

    import warnings

    _, exp = store
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uri = _logged_model(exp)
    assert not [str(w.message) for w in caught if "type hint" in str(w.message)]  # predict is annotated
    png, jpg = _inputs(tmp_path / "in")

    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None
    assert [c.name for c in info.signature.inputs.inputs] == ["image", "strength", "exposure", "shadows"]
    model_dir = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "dl")))
    assert {"input_example.json", "serving_input_example.json"} & {p.name for p in model_dir.iterdir()}
    assert {p.name for p in (model_dir / "artifacts").iterdir()} == {"quantiles.onnx", "model.onnx"}  # the ONNX pair
    assert not (model_dir / "code" / "lowlight" / "weights").exists()  # the weights travel as artifacts only

    model = mlflow.pyfunc.load_model(uri)
    df = pd.DataFrame({"image": [encode_image(png), encode_image(jpg)], "strength": [1.0, float("nan")]})
    result = model.predict(df)
    assert list(result.columns) == ["image"] and len(result) == 2

    expected_png = _rgb(Image.open(_cli(png, tmp_path / "cli_png")))
    expected_jpg = _rgb(Image.open(_cli(jpg, tmp_path / "cli_jpg", "--format", "png")))
    got_png, got_jpg = (_rgb(decode_image(b)) for b in result["image"])
    assert got_png.shape == expected_png.shape == (40, 56, 3)
    np.testing.assert_array_equal(got_png, expected_png)
    np.testing.assert_array_equal(got_jpg, expected_jpg)
    low = _rgb(Image.open(png))
    assert np.abs(got_png.astype(int) - low).mean() > 5  # it did enhance (not the input back)

    # strength 0 is the input back; without the column it is 1
    same = model.predict(pd.DataFrame({"image": [encode_image(png), encode_image(jpg)], "strength": [0.0, 0.0]}))
    np.testing.assert_array_equal(_rgb(decode_image(same["image"][0])), low)
    np.testing.assert_array_equal(_rgb(decode_image(same["image"][1])), _rgb(Image.open(jpg)))
    default = model.predict(pd.DataFrame({"image": [encode_image(png)]}))
    np.testing.assert_array_equal(_rgb(decode_image(default["image"][0])), expected_png)

    with pytest.raises(Exception, match="row 1"):
        model.predict(pd.DataFrame({"image": [encode_image(png), encode_image(b"not an image")]}))

    # exposure and shadows as `lowlight enhance --exposure EV --shadows S`; NaN is the default
    set_ = model.predict(pd.DataFrame({"image": [encode_image(png)] * 2, "strength": [0.8, 0.8],
                                       "exposure": [0.7, float("nan")], "shadows": [1.5, float("nan")]}))
    expected = _rgb(Image.open(_cli(png, tmp_path / "cli_set", "--strength", "0.8", "--exposure", "0.7",
                                    "--shadows", "1.5")))
    np.testing.assert_array_equal(_rgb(decode_image(set_["image"][0])), expected)
    assert not np.array_equal(expected, expected_png)
    np.testing.assert_array_equal(_rgb(decode_image(set_["image"][1])),
                                  _rgb(Image.open(_cli(png, tmp_path / "cli_08", "--strength", "0.8"))))
    # a bad setting names the row and the column (not the CLI's flag) and the range
    with pytest.raises(Exception, match="row 0: column 'exposure': 5.0: must be a number of stops from -3 to 3"):
        model.predict(pd.DataFrame({"image": [encode_image(png)], "exposure": [5.0]}))
    with pytest.raises(Exception, match=r"row 1: column 'shadows': 3.0: .* NaN \(or no such column\) for auto"):
        model.predict(pd.DataFrame({"image": [encode_image(png)] * 2, "shadows": [1.0, 3.0]}))
    with pytest.raises(Exception, match="row 0: column 'strength': -1.0: must be a number from 0"):
        model.predict(pd.DataFrame({"image": [encode_image(png)], "strength": [-1.0]}))


# a light install (numpy, Pillow, onnxruntime) plus MLflow: torch and XGBoost cannot be imported
_NO_FITTING_SIDE = """
import sys
class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "xgboost"):
            raise ImportError(f"{name} is not installed (the light install)")
        return None
sys.meta_path.insert(0, _Refuse())
"""


def test_logging_refuses_the_fitting_side_files(store, tmp_path):
    from lowlight.inference import shipped

    with pytest.raises(ValueError, match="exported .onnx"):
        log_enhancer_model(shipped.WEIGHTS_DIR / shipped.QUANTILE_MODEL, shipped.WEIGHTS_DIR / shipped.NETWORK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(log: Path, n: int = 4000) -> str:
    return log.read_text(errors="replace")[-n:] if log.exists() else "(no log)"


@pytest.mark.slow
def test_served_model_gives_the_cli_pixels(store, tmp_path):
    uri_store, exp = store
    uri = _logged_model(exp)
    png, _ = _inputs(tmp_path / "in")
    expected = _rgb(Image.open(_cli(png, tmp_path / "cli")))

    exe = Path(sys.executable).with_name("mlflow")
    assert exe.is_file(), exe
    port = _free_port()
    log = tmp_path / "serve.log"
    # mlflow runs `uvicorn` from PATH: the one beside this interpreter, also when the venv is not activated;
    # the server (and the workers it starts) cannot import torch or XGBoost, as in a light install
    (tmp_path / "light").mkdir()
    (tmp_path / "light" / "sitecustomize.py").write_text(_NO_FITTING_SIDE)
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri_store, LOWLIGHT_MLFLOW="0",
               PATH=os.pathsep.join([str(exe.parent), os.environ.get("PATH", "")]),
               PYTHONPATH=os.pathsep.join([str(tmp_path / "light"), os.environ.get("PYTHONPATH", "")]))
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(exe), "models", "serve", "-m", uri, "--env-manager", "local",
                                 "-h", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"server exited ({proc.returncode}):\n{_tail(log)}"
            try:
                with urllib.request.urlopen(base + "/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            assert time.monotonic() < deadline, f"no /ping in 120 s:\n{_tail(log)}"
            time.sleep(1)

        body = json.dumps({"dataframe_split": {"columns": ["image", "strength"],
                                               "data": [[encode_image(png), 1.0]]}}).encode()
        req = urllib.request.Request(base + "/invocations", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                reply = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            pytest.fail(f"/invocations: HTTP {exc.code}: {exc.read()[:2000]!r}\n{_tail(log)}")
        preds = reply["predictions"] if isinstance(reply, dict) else reply
        assert len(preds) == 1, reply
        first = preds[0]
        b64 = first["image"] if isinstance(first, dict) else (first[0] if isinstance(first, list) else first)
        np.testing.assert_array_equal(_rgb(decode_image(b64)), expected)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
