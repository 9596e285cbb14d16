"""The whole enhancer (quantile model + mapping + network) as an MLflow pyfunc model.

``log_enhancer_model(quantile_model, network)`` logs it, the exported ONNX pair as artifacts and
the ``lowlight`` package as code; it predicts in ONNX Runtime, so serving needs the light install
(numpy, Pillow, onnxruntime) plus MLflow, no torch or XGBoost, and ``mlflow.pyfunc.load_model(uri).predict(df)`` and
``mlflow models serve -m URI`` give the pixels ``lowlight enhance`` gives. Input: a
DataFrame with a string column ``image`` (base64 of an image file, any format Pillow
reads) and optional double columns ``strength`` (0..1.5; missing or NaN: 1), ``exposure``
(stops, -3..3, as ``lowlight enhance --exposure``; missing or NaN: 0) and ``shadows`` (0..2, as
``--shadows``; missing or NaN: auto). Output:
a DataFrame with one string column ``image``, the enhanced image as base64 PNG in the
input's kind (grey stays grey, alpha is kept, 16-bit grey stays 16-bit).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from lowlight.imageio import MAX_PIXELS

__all__ = ["EnhancerModel", "log_enhancer_model", "encode_image", "decode_image", "SIGNATURE",
           "REQUIREMENTS"]

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REQUIREMENTS = ("onnxruntime", "numpy", "pillow", "pandas", "PyYAML", "tqdm", "mlflow")
"""What the served model needs: pinned as in the repository's requirements.txt where it is there."""

SIGNATURE = ModelSignature(inputs=Schema([ColSpec("string", "image"), ColSpec("double", "strength", required=False),
                                          ColSpec("double", "exposure", required=False),
                                          ColSpec("double", "shadows", required=False)]),
                           outputs=Schema([ColSpec("string", "image")]))


def encode_image(image) -> str:
    """Base64 text of an image file's bytes: a path, the bytes themselves, or a PIL image (as PNG)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data = buf.getvalue()
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        data = Path(image).read_bytes()
    return base64.b64encode(data).decode("ascii")


def decode_image(b64: str, where: str = "image", max_pixels: int | None = MAX_PIXELS):
    """Open and decode a base64 image file as :func:`lowlight.imageio.open_image` opens a path:
    empty, truncated, animated, too large (``max_pixels``) or not an image is an ImageError (a ValueError)
    whose text starts with ``where``."""
    from lowlight.imageio import ImageError, open_image_bytes

    if not isinstance(b64, (str, bytes)):
        raise ImageError(where, f"expected base64 text, got {type(b64).__name__}")
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(where, f"not valid base64 ({exc})") from exc
    return open_image_bytes(data, where, max_pixels)


def _setting(row, column: str, default):
    """The row's value of an optional setting column, checked as ``lowlight enhance`` checks its flag of
    the same name: ``default`` when the column or the value is missing (None, NaN); a bad value is a
    ValueError of one line that names the column."""
    from lowlight.inference.settings import check_exposure, check_shadows, check_strength

    value = row[column] if column in row.index else None
    if value is None:
        return default
    try:
        if pd.isna(value):
            return default
    except (TypeError, ValueError):
        pass
    value = float(value) if isinstance(value, (int, float, np.integer, np.floating)) else value
    check = {"strength": check_strength, "exposure": check_exposure, "shadows": check_shadows}[column]
    try:
        return check(value)
    except ValueError as exc:
        message = str(exc).replace(f"--{column} ", f"column {column!r}: ", 1)
        raise ValueError(message.replace("leave it out for auto", "NaN (or no such column) for auto")) from None


class EnhancerModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of :class:`lowlight.inference.enhancer.Enhancer` in ONNX Runtime (CPU; artifacts
    ``quantile_model`` and ``network``, the exported ``.onnx`` pair, the network carrying its histmap settings)."""

    def load_context(self, context):
        from lowlight.inference.enhancer import Enhancer

        self.enhancer = Enhancer.from_files(context.artifacts["quantile_model"], context.artifacts["network"],
                                            device="cpu")

    # the hint stops MLflow's "add type hints" warning; a DataFrame hint leaves the schema to SIGNATURE
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from dataclasses import replace

        from lowlight.imageio import photo_metadata
        from lowlight.inference.enhancer import enhance

        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        if "image" not in model_input.columns:
            raise ValueError("model input needs a column 'image' (base64 of an image file)")
        out = []
        for index, row in model_input.iterrows():
            where = f"row {index}"
            raw = decode_image(row["image"], where=where, max_pixels=MAX_PIXELS)
            try:
                enhancer = replace(self.enhancer, exposure=_setting(row, "exposure", 0.0),
                                   shadows=_setting(row, "shadows", None))  # the loaded sessions, shared
                img = enhance(raw, enhancer=enhancer, strength=_setting(row, "strength", 1.0), max_pixels=None)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from exc
            buf = io.BytesIO()
            img.save(buf, format="PNG", **photo_metadata(raw))
            out.append(base64.b64encode(buf.getvalue()).decode("ascii"))
        return pd.DataFrame({"image": pd.Series(out, dtype=object, index=model_input.index)})


def _requirements(path: Path | None = None) -> list[str]:
    """:data:`REQUIREMENTS`, each pinned as ``requirements.txt`` pins it (unpinned when not there)."""
    path = path or PACKAGE_DIR.parent / "requirements.txt"
    pins: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            found = re.match(r"^([A-Za-z0-9_.\-]+)\s*(==.+)$", line)
            if found:
                pins[re.sub(r"[-_.]+", "-", found.group(1)).lower()] = found.group(2).strip()
    return [name + pins.get(re.sub(r"[-_.]+", "-", name).lower(), "") for name in REQUIREMENTS]


def _input_example() -> pd.DataFrame:
    """One tiny (16 x 16) dark PNG, strength 1."""
    from PIL import Image

    yy, xx = np.mgrid[0:16, 0:16]
    rgb = np.stack([xx * 2 + 8, yy * 2 + 6, (xx + yy) + 4], axis=2).astype(np.uint8)
    return pd.DataFrame({"image": [encode_image(Image.fromarray(rgb))], "strength": [1.0]})


def _copy_package(dst: Path) -> Path:
    """The lowlight package without its weights and byte-code caches (the weights travel as artifacts)."""
    target = dst / PACKAGE_DIR.name

    def ignore(folder, names):
        skip = {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))}
        if Path(folder).resolve() == PACKAGE_DIR:
            skip.add("weights")
        return skip

    shutil.copytree(PACKAGE_DIR, target, ignore=ignore)
    return target


def log_enhancer_model(quantile_model: Path, network: Path, name: str = "enhancer",
                       registered_model_name: str | None = None):
    """Log the enhancer as a pyfunc model (in the active run, or a new one) and return its ModelInfo."""
    for what, path in (("quantile model", quantile_model), ("network", network)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{what} {path}: file does not exist")
        if Path(path).suffix != ".onnx":
            raise ValueError(f"{what} {path}: log the exported .onnx file (the export stage writes it)")
    with tempfile.TemporaryDirectory(prefix="lowlight-pyfunc-") as tmp:
        code = _copy_package(Path(tmp))
        return mlflow.pyfunc.log_model(
            name=name, python_model=os.fspath(Path(__file__).with_name("pyfunc_model.py")),  # model from code
            artifacts={"quantile_model": os.fspath(quantile_model), "network": os.fspath(network)},
            signature=SIGNATURE, input_example=_input_example(), code_paths=[os.fspath(code)],
            pip_requirements=_requirements(), registered_model_name=registered_model_name)
