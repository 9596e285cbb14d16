"""`lowlight app` against hostile pages and hostile uploads (issue 26): other origins, other Host
names (DNS rebinding), memory bombs beyond the budget, bad names, a full temporary folder, and
the files of tests/test_faults_hostile.py. Each gets a one-line JSON refusal, never a 500."""

from __future__ import annotations

import errno
import http.client
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from enhance_stub import StubQuantiles
from test_app import Server
from test_faults_hostile import BROKEN, _foreign

from lowlight.app import server as app_server
from lowlight.app.budget import WORK_BYTES_PER_PIXEL, MemoryBudget
from lowlight.app.guard import own_hosts, refusal
from lowlight.app.server import create_app
from lowlight.inference.enhancer import Enhancer

pytestmark = pytest.mark.fault


def _png(w=8, h=6, value=None) -> bytes:
    arr = np.full((h, w, 3), value, np.uint8) if value is not None else \
        np.random.default_rng(0).integers(0, 90, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _serve(request, **kwargs) -> Server:
    factory = kwargs.pop("factory", lambda: Enhancer(StubQuantiles(), None))
    server = Server(create_app(factory, **kwargs))
    request.addfinalizer(server.close)
    return server


@pytest.fixture
def server(request):
    return _serve(request)


def _raw(server: Server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, JSON or bytes) with exactly these headers (http.client adds Host only if absent)."""
    host, port = server.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    headers = {"Host": f"{host}:{port}", **(headers or {})}
    for key, value in headers.items():
        if value is not None:
            for v in value if isinstance(value, list) else [value]:
                conn.putheader(key, v)
    conn.putheader("Content-Length", str(len(body or b"")))
    conn.endheaders(body or b"")
    r = conn.getresponse()
    data = r.read()
    conn.close()
    try:
        return r.status, dict(r.headers), json.loads(data)
    except ValueError:
        return r.status, dict(r.headers), data


def _jobs(server: Server) -> int:
    return len(server.server.config.app.state.store._jobs)


# --------------------------------------------------------------------------- other origins

def _foreign_origins(port: int) -> list[str]:
    return ["http://evil.example", "null", f"https://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}",
            f"http://localhost.evil.example:{port}", f"http://127.0.0.1:{port}.evil.example", "file://"]


@pytest.mark.parametrize("k", range(7))
@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "multipart/form-data"])
def test_a_post_from_another_page_is_refused_before_anything_is_stored(server, k, content_type):
    origin = _foreign_origins(int(server.base.rsplit(":", 1)[1]))[k]
    code, _, body = _raw(server, "POST", "/api/jobs?name=a.png", _png(), {"Origin": origin, "Content-Type": content_type})
    assert code == 403 and "refused" in body["error"] and "\n" not in body["error"], body
    assert _jobs(server) == 0


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH", "OPTIONS"])
def test_other_methods_from_another_page_are_refused(server, method):
    code, _, body = _raw(server, method, "/api/jobs/x", None, {"Origin": "http://evil.example"})
    assert code == 403, (code, body)


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_post_without_origin_but_from_another_site_is_refused(server, site):
    code, _, _ = _raw(server, "POST", "/api/jobs?name=a.png", _png(), {"Sec-Fetch-Site": site})
    assert code == 403 and _jobs(server) == 0


def test_the_apps_own_page_and_scripts_pass(server):
    port = server.base.rsplit(":", 1)[1]
    for headers in ({"Origin": server.base}, {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"},
                    {"Sec-Fetch-Site": "same-origin", "Origin": server.base}, {}):
        code, _, body = _raw(server, "POST", "/api/jobs?name=a.png", _png(), headers)
        assert code == 200, (headers, body)


# --------------------------------------------------------------------------- other Host names

@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1:1", "127.0.0.1", "",
                                  "127.0.0.1:{port}.evil.example", "[::1]:{port}", "0.0.0.0:{port}",
                                  ["127.0.0.1:{port}", "evil.example:{port}"]])
@pytest.mark.parametrize("method, path", [("GET", "/"), ("POST", "/api/jobs?name=a.png")])
def test_a_host_header_that_is_not_the_apps_address_is_refused(server, host, method, path):
    port = server.base.rsplit(":", 1)[1]
    value = [h.format(port=port) for h in host] if isinstance(host, list) else host.format(port=port)
    code, _, body = _raw(server, method, path, _png() if method == "POST" else None, {"Host": value})
    assert code in (400, 421), (value, code, body)  # 400: uvicorn's own refusal of an empty or double Host
    assert _jobs(server) == 0


def test_own_hosts_knows_the_listening_address_by_every_name():
    assert own_hosts(("127.0.0.1", 7860)) == {"127.0.0.1:7860", "localhost:7860"}
    assert own_hosts(("::1", 7860)) == {"[::1]:7860", "localhost:7860"}
    assert own_hosts(("::ffff:127.0.0.1", 80)) == {"127.0.0.1:80", "127.0.0.1", "localhost:80", "localhost"}
    assert own_hosts(("192.168.1.5", 7860), ["photos.lan"]) == {"192.168.1.5:7860", "photos.lan:7860"}
    assert refusal("GET", {"host": "192.168.1.5:7860"}, own_hosts(("192.168.1.5", 7860))) is None
    assert refusal("GET", {"host": "localhost:7860"}, own_hosts(("192.168.1.5", 7860)))[0] == 421


# --------------------------------------------------------------------------- the memory budget

def test_a_small_file_of_many_pixels_is_refused_from_its_header(request):
    server = _serve(request, work_bytes=20_000_000 * WORK_BYTES_PER_PIXEL)
    bomb = _png(7000, 7000, value=0)  # about 143 KB, 49 megapixels
    assert len(bomb) < 200_000
    code, _, body = _raw(server, "POST", "/api/jobs?name=zeros.png", bomb)
    assert code == 413 and "memory budget" in body["error"] and body["error"].startswith("zeros.png: "), body


def test_the_budget_spent_is_a_503_with_retry_after_and_comes_back(request):
    gate = threading.Event()

    class Slow:
        def unlifted(self, rgb):
            gate.wait(20)
            return rgb

        def shadow_amount(self, rgb):
            return 0.0

    server = _serve(request, factory=Slow, work_bytes=100 * WORK_BYTES_PER_PIXEL)
    code, _, first = _raw(server, "POST", "/api/jobs?name=a.png", _png(10, 10))
    assert code == 200
    code, headers, body = _raw(server, "POST", "/api/jobs?name=b.png", _png(10, 10))
    assert code == 503 and int(headers["retry-after"]) > 0 and "try again" in body["error"], body
    gate.set()
    server.wait_done(first["id"])
    assert _raw(server, "POST", "/api/jobs?name=c.png", _png(10, 10))[0] == 200


def test_a_failed_decode_gives_its_reservation_back(request):
    server = _serve(request, work_bytes=100 * WORK_BYTES_PER_PIXEL)
    for _ in range(3):
        assert _raw(server, "POST", "/api/jobs?name=t.png", _png(10, 10)[:60])[0] == 400
    assert server.server.config.app.state.budget.used == 0


def test_the_store_is_bounded_in_bytes_not_only_in_jobs(request):
    server = _serve(request, max_bytes=2 * 100 * 8)  # two 10 x 10 photos
    ids = [_raw(server, "POST", "/api/jobs?name=a.png", _png(10, 10))[2]["id"] for _ in range(4)]
    server.wait_done(ids[-1])
    assert _jobs(server) == 2 and _raw(server, "GET", f"/api/jobs/{ids[0]}")[0] == 404


def test_reservations_release_once():
    budget = MemoryBudget(limit=10 * WORK_BYTES_PER_PIXEL)
    r = budget.reserve(10)
    assert r is not None and budget.reserve(1) is None
    r.release()
    r.release()
    assert budget.used == 0 and budget.reserve(10) is not None


# --------------------------------------------------------------------------- names and a full temp folder

@pytest.mark.parametrize("name, status", [
    ("a\x00b.png", 400), ("a\nb.png", 400), ("é" * 130 + ".png", 400),
    ("photo." + "é" * 120, 200), ("x" * 251 + ".png", 200), ("../../etc/passwd.png", 200),
])
def test_bad_names_are_a_400_and_long_legal_ones_work(server, name, status):
    from urllib.parse import quote

    code, _, body = _raw(server, "POST", f"/api/jobs?name={quote(name)}", _png())
    assert code == status, (name, body)
    if status == 200:
        assert "/" not in body["name"] and server.wait_done(body["id"])["state"] == "done"
        code, headers, _ = _raw(server, "GET", f"/api/jobs/{body['id']}/download")
        assert code == 200, headers
    else:
        assert "file name" in body["error"]


@pytest.mark.parametrize("where", ["mkdtemp", "write"])
def test_a_full_temporary_folder_is_a_507_with_a_message(server, monkeypatch, where):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "mkdtemp":
        monkeypatch.setattr(app_server.tempfile, "mkdtemp", full)
    else:
        class Full(io.BytesIO):
            def write(self, data):
                full()

        monkeypatch.setattr(app_server, "open", lambda *a, **k: Full(), raising=False)
    code, _, body = _raw(server, "POST", "/api/jobs?name=a.png", _png())
    assert code == 507 and "is full" in body["error"] and "TMPDIR" in body["error"], body


# --------------------------------------------------------------------------- hostile files

@pytest.mark.parametrize("fmt", ["EPS", "PDF", "PPM", "ICO", "TGA"])
def test_an_undocumented_format_upload_is_a_400(server, fmt):
    code, _, body = _raw(server, "POST", "/api/jobs?name=holiday.jpg", _foreign(fmt))
    assert code == 400 and "not a readable image" in body["error"], body


@pytest.mark.filterwarnings("error::UserWarning")  # Pillow's "Corrupt EXIF" would be noise in the app's log
@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_upload_is_never_a_500(server, case):
    ext, make = BROKEN[case]
    code, _, body = _raw(server, "POST", f"/api/jobs?name=a{ext}", make())
    assert code in (200, 400), (code, body)


@pytest.mark.parametrize("mode", ["CMYK", "LAB", "YCbCr", "I;16"])
def test_a_tiff_upload_downloads_as_a_file_that_opens(server, mode):
    arr = np.random.default_rng(1).integers(0, 255, (6, 8, 4 if mode == "CMYK" else 3), dtype=np.uint8)
    img = Image.fromarray(arr, "CMYK") if mode == "CMYK" else Image.fromarray(arr[..., :3]).convert(mode) \
        if mode != "I;16" else Image.fromarray((arr[..., 0].astype(np.uint16) * 257))
    buf = io.BytesIO()
    img.save(buf, format="TIFF")
    code, _, job = _raw(server, "POST", "/api/jobs?name=a.tif", buf.getvalue())
    assert code == 200 and server.wait_done(job["id"])["state"] == "done"
    code, _, data = _raw(server, "GET", f"/api/jobs/{job['id']}/download")
    with Image.open(io.BytesIO(data)) as out:
        out.load()
        assert out.mode == ("I;16" if mode == "I;16" else "RGB")
