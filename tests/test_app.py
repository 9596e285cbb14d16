"""``lowlight app``'s API, on a real server in a thread (httpx, which TestClient needs, is not a
dependency), with the stub enhancer of tests/enhance_stub.py: milliseconds a photo."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from conftest import darken, synthetic_photo
from enhance_stub import PassThroughNetwork, StubQuantiles

from lowlight.app.server import create_app
from lowlight.image_writer import save_photo
from lowlight.cli.main import main
from lowlight.imageio import photo_metadata
from lowlight.inference.enhancer import Enhancer, enhance


class Server:
    """A uvicorn server on a free port in a thread; ``request`` speaks urllib."""

    def __init__(self, app):
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def request(self, path: str, data: bytes | None = None) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(self.base + path, data=data, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def upload(self, name: str, data: bytes) -> tuple[int, dict]:
        code, _, body = self.request(f"/api/jobs?name={urllib.parse.quote(name)}", data)
        return code, json.loads(body)

    def wait_done(self, job_id: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            code, _, body = self.request(f"/api/jobs/{job_id}")
            assert code == 200, body
            status = json.loads(body)
            if status["state"] in ("done", "failed"):
                return status
            assert time.monotonic() < deadline, status
            time.sleep(0.02)


@pytest.fixture
def stub():
    return Enhancer(StubQuantiles(), None, tile_pixels=1024 * 1024)


def _serve(request, stub, **kwargs) -> Server:
    calls = []

    def factory():
        calls.append(1)
        return stub

    server = Server(create_app(factory, **kwargs))
    server.factory_calls = calls
    request.addfinalizer(server.close)
    return server


@pytest.fixture
def server(request, stub):
    return _serve(request, stub)


def _dark_png(tmp_path: Path, h=40, w=56, seed=1, name="dark.png") -> Path:
    src = tmp_path / name
    Image.fromarray(darken(synthetic_photo(h, w, seed=seed), seed=seed)).save(src)
    return src


def test_page_is_served(server):
    code, headers, body = server.request("/")
    assert code == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    for marker in ('class="strength"', 'class="exposure"', 'class="shadows"', 'class="auto"', 'class="split"', 'class="download"', 'id="files"', "data-state"):
        assert marker in page
    assert "http://" not in page and "https://" not in page  # no CDN, no external assets


def test_upload_enhance_download_matches_the_api(server, stub, tmp_path):
    src = _dark_png(tmp_path)
    code, job = server.upload(src.name, src.read_bytes())
    assert code == 200, job
    assert job["width"] == 56 and job["height"] == 40 and job["name"] == "dark.png" and job["id"]
    status = server.wait_done(job["id"])
    assert status == {"state": "done", "progress": 1.0, "error": None, "auto_shadows": 0.0}  # no network: no lift

    code, headers, body = server.request(f"/api/jobs/{job['id']}/download?strength=0.5")
    assert code == 200, body
    assert 'filename="dark.enhanced.png"' in headers["content-disposition"]
    got = Image.open(io.BytesIO(body))
    assert got.format == "PNG"
    want = enhance(Image.open(src), enhancer=stub, strength=0.5)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))

    # previews: PNGs of the photo's size (it is under 1280 px); after at strength 0 is the input
    for path in ("before.png", "after.png?strength=1", "after.png?strength=0"):
        code, headers, body = server.request(f"/api/jobs/{job['id']}/{path}")
        assert code == 200 and headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(body)).size == (56, 40)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body)).convert("RGB")),
                                  np.asarray(Image.open(src).convert("RGB")))
    assert server.factory_calls == [1]  # loaded once, lazily


def test_jpeg_keeps_exif_and_matches_the_cli_file(server, stub, tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "LowlightCam"  # Make
    exif[0x0110] = "Night 1"  # Model
    exif[0x0132] = "2024:01:02 03:04:05"  # DateTime
    src = tmp_path / "night.jpg"
    Image.fromarray(darken(synthetic_photo(48, 64, seed=3), seed=3)).save(src, quality=90, exif=exif)
    code, job = server.upload(src.name, src.read_bytes())
    assert code == 200, job
    assert server.wait_done(job["id"])["state"] == "done"
    code, headers, body = server.request(f"/api/jobs/{job['id']}/download?strength=0.75")
    assert code == 200, body
    assert 'filename="night.enhanced.jpg"' in headers["content-disposition"]
    got = Image.open(io.BytesIO(body))
    assert got.format == "JPEG"
    tags = got.getexif()
    assert tags[0x010F] == "LowlightCam" and tags[0x0110] == "Night 1" and tags[0x0132] == "2024:01:02 03:04:05"
    # the same file the CLI writes: enhance() on the opened photo, then its writer
    raw = Image.open(src)
    cli_file = tmp_path / "cli.jpg"
    save_photo(enhance(raw, enhancer=stub, strength=0.75), cli_file, photo_metadata(raw))
    assert body == cli_file.read_bytes()


def test_gif_comes_back_as_png(server, tmp_path):
    src = tmp_path / "anim-free.gif"
    Image.fromarray(darken(synthetic_photo(24, 32, seed=4), seed=4)).convert("P").save(src)
    code, job = server.upload(src.name, src.read_bytes())
    assert code == 200, job
    assert server.wait_done(job["id"])["state"] == "done"
    code, headers, body = server.request(f"/api/jobs/{job['id']}/download")
    assert code == 200 and 'filename="anim-free.enhanced.png"' in headers["content-disposition"]
    assert Image.open(io.BytesIO(body)).format == "PNG"


def _animated_gif() -> bytes:
    buf = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), (80 * i, 0, 0)) for i in range(3)]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


@pytest.mark.parametrize("name,data,words", [
    ("notes.txt", b"this is not an image", ["notes.txt", "not a readable image", "choose a photo file"]),
    ("empty.png", b"", ["empty.png", "empty"]),
    ("moving.gif", None, ["moving.gif", "animated", "extract the frame"]),
])
def test_bad_upload_is_a_400_with_one_line(server, name, data, words):
    code, body = server.upload(name, _animated_gif() if data is None else data)
    assert code == 400
    assert list(body) == ["error"] and "\n" not in body["error"]
    for word in words:
        assert word in body["error"]
    assert body["error"].startswith(f"{name}: ") and "/tmp" not in body["error"] and "upload." not in body["error"]


def test_too_many_pixels_is_refused_from_the_header(request, stub, tmp_path):
    server = _serve(request, stub, max_pixels=1000)
    src = _dark_png(tmp_path, name="big.png")
    code, body = server.upload(src.name, src.read_bytes())
    assert code == 400 and "\n" not in body["error"]
    assert body["error"].startswith("big.png: image is too large: 56x40") and "lowlight app --max-pixels" in body["error"]
    assert server.factory_calls == []


@pytest.mark.parametrize("strength", ["2", "-0.1", "nan", "abc"])
def test_bad_strength_is_refused(server, tmp_path, strength):
    src = _dark_png(tmp_path)
    code, job = server.upload(src.name, src.read_bytes())
    server.wait_done(job["id"])
    for path in ("download", "after.png"):
        code, _, body = server.request(f"/api/jobs/{job['id']}/{path}?strength={strength}")
        assert code == 400
        error = json.loads(body)["error"]
        assert "\n" not in error and error.startswith("strength ") and "must be a number from 0" in error


def _crushed_png(tmp_path: Path) -> Path:
    """A photo whose left half is black and right half well lit: the shadow lift's auto gate opens."""
    rgb = synthetic_photo(40, 56, seed=3)
    rgb[:, :28] = darken(rgb[:, :28], 0.004, seed=3)
    src = tmp_path / "half.png"
    Image.fromarray(rgb).save(src)
    return src


def test_the_shadows_setting_is_one_lift_and_matches_the_cli(request, tmp_path):
    from lowlight.inference.shadows import auto_amount

    lifting = Enhancer(StubQuantiles(), PassThroughNetwork())
    server = _serve(request, lifting)
    src = _crushed_png(tmp_path)
    rgb = np.asarray(Image.open(src).convert("RGB"))
    job = server.upload(src.name, src.read_bytes())[1]
    status = server.wait_done(job["id"])
    assert 0 < status["auto_shadows"] == round(auto_amount(rgb), 4)

    results = {}
    for shadows in ("auto", "0", "1.5"):
        code, _, body = server.request(f"/api/jobs/{job['id']}/download?strength=0.8&shadows={shadows}")
        assert code == 200, body
        have = np.asarray(Image.open(io.BytesIO(body)))
        # what `lowlight enhance --strength 0.8 [--shadows S]` writes
        cli = Enhancer(StubQuantiles(), PassThroughNetwork(), shadows=None if shadows == "auto" else float(shadows))
        np.testing.assert_array_equal(have, np.asarray(enhance(Image.open(src), enhancer=cli, strength=0.8)))
        # the photo is under the preview size: the preview is the download's pixels
        code, _, body = server.request(f"/api/jobs/{job['id']}/after.png?strength=0.8&shadows={shadows}")
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body)).convert("RGB")), have)
        results[shadows] = have
    dark = (slice(None), slice(0, 28))
    assert results["0"][dark].mean() < results["auto"][dark].mean() < results["1.5"][dark].mean()
    code, _, body = server.request(f"/api/jobs/{job['id']}/download?shadows=")  # empty: auto, as left out
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))),
                                  np.asarray(enhance(Image.open(src), enhancer=lifting)))


def test_the_exposure_setting_is_one_table_and_matches_the_cli(request, tmp_path):
    lifting = Enhancer(StubQuantiles(), PassThroughNetwork())
    server = _serve(request, lifting)
    src = _crushed_png(tmp_path)
    job = server.upload(src.name, src.read_bytes())[1]
    server.wait_done(job["id"])
    means = []
    for ev in ("-1", "0", "0.7", "3"):
        code, _, body = server.request(f"/api/jobs/{job['id']}/download?strength=0.8&exposure={ev}")
        assert code == 200, body
        have = np.asarray(Image.open(io.BytesIO(body)))
        # what `lowlight enhance --strength 0.8 --exposure EV` writes
        cli = Enhancer(StubQuantiles(), PassThroughNetwork(), exposure=float(ev))
        np.testing.assert_array_equal(have, np.asarray(enhance(Image.open(src), enhancer=cli, strength=0.8)))
        code, _, body = server.request(f"/api/jobs/{job['id']}/after.png?strength=0.8&exposure={ev}")
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body)).convert("RGB")), have)
        means.append(have.mean())
    assert means == sorted(means) and means[0] < means[-1]
    code, _, body = server.request(f"/api/jobs/{job['id']}/download?exposure=")  # empty: 0, as left out
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))),
                                  np.asarray(enhance(Image.open(src), enhancer=lifting)))
    for bad in ("3.5", "-4", "nan", "bright"):
        for path in ("download", "after.png"):
            code, _, body = server.request(f"/api/jobs/{job['id']}/{path}?exposure={bad}")
            error = json.loads(body)["error"]
            assert code == 400 and "\n" not in error and error.startswith("exposure "), error
            assert "stops from -3 to 3" in error and "--exposure" not in error


@pytest.mark.parametrize("shadows", ["3", "-1", "inf", "lots"])
def test_bad_shadows_is_refused(server, tmp_path, shadows):
    src = _dark_png(tmp_path)
    job = server.upload(src.name, src.read_bytes())[1]
    server.wait_done(job["id"])
    for path in ("download", "after.png"):
        code, _, body = server.request(f"/api/jobs/{job['id']}/{path}?shadows={shadows}")
        assert code == 400
        error = json.loads(body)["error"]
        assert "\n" not in error and error.startswith("shadows ") and "from 0 (off) to 2" in error, error
        assert "--shadows" not in error and "auto" in error


def test_unknown_job_and_oldest_job_dropped(request, stub, tmp_path):
    server = _serve(request, stub, max_jobs=2)
    src = _dark_png(tmp_path)
    ids = [server.upload(src.name, src.read_bytes())[1]["id"] for _ in range(3)]
    server.wait_done(ids[-1])
    code, _, body = server.request(f"/api/jobs/{ids[0]}")
    assert code == 404 and "upload it again" in json.loads(body)["error"]
    for job_id in ids[1:]:
        assert server.request(f"/api/jobs/{job_id}")[0] == 200


def test_failed_enhancer_is_reported_on_the_job(request, tmp_path):
    def factory():
        raise RuntimeError("weights are broken")

    server = Server(create_app(factory))
    request.addfinalizer(server.close)
    src = _dark_png(tmp_path)
    code, job = server.upload(src.name, src.read_bytes())
    status = server.wait_done(job["id"])
    assert status["state"] == "failed" and "weights are broken" in status["error"] and "dark.png" in status["error"]
    code, _, body = server.request(f"/api/jobs/{job['id']}/download")
    assert code == 409


def test_progress_callback_counts_tiles_and_is_not_compared():
    torch = pytest.importorskip("torch")
    from lowlight.models import build_model

    torch.manual_seed(0)
    q = StubQuantiles()
    calls = []
    tiled = Enhancer(q, build_model("unet_small", in_channels=6).eval(), tile_pixels=1, tile=64, overlap=16,
                     progress=lambda done, total: calls.append((done, total)))
    low = darken(synthetic_photo(72, 110, seed=2), seed=2)
    out = tiled(low)
    total = calls[-1][1]
    assert total > 1 and calls == [(i, total) for i in range(1, total + 1)]
    tiled.progress = None
    np.testing.assert_array_equal(tiled(low), out)  # the callback changes nothing
    assert Enhancer(q, None, progress=print) == Enhancer(q, None)


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["app", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--weights", "--quantile-model", "--device", "--max-pixels"):
        assert flag in out
