"""One error contract: every error meant for a person derives from UserError and becomes one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import lowlight
from lowlight.errors import UserError


def _package_modules():
    for info in pkgutil.walk_packages(lowlight.__path__, "lowlight."):
        if info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def test_every_error_class_of_the_package_is_a_user_error():
    found = {}
    for module in _package_modules():
        for name, cls in vars(module).items():
            if (inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == module.__name__
                    and not name.startswith("_")):  # private ones are control flow, caught inside
                found[f"{module.__name__}.{name}"] = cls
    assert len(found) >= 8  # ConfigError, DataError, ImageError, OutputError, TrackingError, ...
    not_user = [n for n, c in found.items() if not issubclass(c, UserError)]
    assert not not_user, f"derive these from lowlight.errors.UserError: {not_user}"


@pytest.mark.parametrize("argv, expected", [
    (["enhance", "x.png", "-o", "out", "--device", "cuda"], "--device"),
    (["enhance", "x.png", "-o", "out", "--weights", "nope.pt"], "nope.pt"),
])
def test_cli_user_errors_are_one_line_with_exit_code_2(tmp_path, argv, expected):
    from PIL import Image

    Image.new("RGB", (16, 16), (20, 20, 20)).save(tmp_path / "x.png")
    env = {"CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "lowlight", *argv], cwd=tmp_path, capture_output=True, text=True,
                          env={**__import__("os").environ, **env}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_a_bad_params_key_is_one_line_naming_it(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  lr: fast\n")
    proc = subprocess.run([sys.executable, str(lowlight.__path__[0] + "/../stages/train.py"), "--params",
                           str(tmp_path / "params.yaml"), "--data", "d", "--mapped", "m", "--checkpoint", "c.pt",
                           "--metrics", "m.json", "--log", "l.csv", "--plots", "p"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "train.lr" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_stopped_stage_is_one_line_and_exit_code_130(capsys):
    """Ctrl-C or SIGTERM (which lowlight.tracking raises as KeyboardInterrupt) in a stage: one line, no traceback."""
    from lowlight.errors import report_user_errors

    @report_user_errors("train")
    def stage(reason):
        raise KeyboardInterrupt(*reason)

    for reason, said in (((), "Ctrl-C"), (("SIGTERM",), "SIGTERM")):
        with pytest.raises(SystemExit) as info:
            stage(reason)
        assert info.value.code == 130
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"train: stopped by {said};"), err
