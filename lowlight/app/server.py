"""The ``lowlight app`` web server: one page, a job store and one enhancing thread.

API (all errors are JSON ``{"error": "<one line>"}``):

- ``GET /``: the page (``page.html`` beside this file);
- ``POST /api/jobs?name=FILE`` with the image bytes as the raw body (no multipart):
  decoded and checked at once (empty, not an image, animated, over ``max_pixels``
  from the header, as ``lowlight enhance`` does), then queued; returns
  ``{"id", "width", "height", "name"}``;
- ``GET /api/jobs/{id}``: ``{"state": queued|running|done|failed, "progress": 0..1, "error"}``;
- ``GET /api/jobs/{id}/before.png`` and ``/after.png?strength=S``: previews, at most
  :data:`PREVIEW_SIDE` pixels on the long side;
- ``GET /api/jobs/{id}/download?strength=S``: the full-resolution result, the very
  pixels (and file: format, EXIF, ICC profile) ``lowlight enhance --strength S`` writes.

Each photo is enhanced once, at strength 1, and kept with its decoded input: any
strength is then a blend (:func:`lowlight.inference.tiles.apply_strength`), the
same one the enhancer applies. The store keeps the last :data:`MAX_JOBS` photos.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request  # here: FastAPI resolves the endpoints' annotations in this module
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from lowlight.imageio import MAX_PIXELS, WRITE_FORMATS, ImageError, LoadedImage

__all__ = ["create_app", "JobStore", "Job", "MAX_JOBS", "PREVIEW_SIDE", "MAX_UPLOAD_BYTES"]

PAGE = Path(__file__).with_name("page.html")
MAX_JOBS = 20
PREVIEW_SIDE = 1280
MAX_UPLOAD_BYTES = 1 << 30  # a 50-megapixel 16-bit TIFF is ~300 MB uncompressed
_PREVIEW_CACHE = 8  # after-previews kept per job (one per strength the slider visited)

# extension of the download for an upload whose name says no format lowlight writes
_FORMAT_EXT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
_READ_HINT = "choose a photo file (JPEG, PNG, WebP, TIFF or BMP)"


@dataclass(eq=False)
class Job:
    """One uploaded photo and its enhancement (kept at strength 1)."""

    id: str
    name: str
    loaded: LoadedImage
    metadata: dict
    ext: str  # the download's extension
    small: np.ndarray  # the input, downscaled for previews
    state: str = "queued"
    progress: float = 0.0
    error: str | None = None
    enhanced: np.ndarray | None = None  # uint8 RGB, full size, strength 1
    small_enhanced: np.ndarray | None = None
    before_png: bytes | None = None
    after_png: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def width(self) -> int:
        return int(self.loaded.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.loaded.rgb.shape[0])

    @property
    def download_name(self) -> str:
        stem = Path(self.name).stem or "photo"
        return f"{stem}.enhanced{self.ext}"

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "progress": round(float(self.progress), 4), "error": self.error}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _downscale(rgb: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    if max(h, w) <= side:
        return rgb
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def _png(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _download_ext(name: str, fmt: str | None) -> str:
    suffix = Path(name).suffix
    if suffix.lower() in WRITE_FORMATS:
        return suffix  # as the CLI: the output keeps the input's extension
    if suffix.lower() == ".gif" or fmt == "GIF":
        return ".png"  # lowlight reads GIF but does not write it
    return _FORMAT_EXT.get(fmt or "", ".png")


def _web_problem(problem: str) -> str:
    """A decoding problem from lowlight.imageio with a fix that fits the page."""
    problem = problem.replace("raise it with --max-pixels N (max_pixels= in Python)",
                              "restart with `lowlight app --max-pixels N` to raise it")
    problem = problem.replace("--max-pixels raises both", "`lowlight app --max-pixels N` raises both")
    if problem.startswith(("not a readable image", "file is empty", "image file is truncated")):
        problem += f"; {_READ_HINT}"
    return problem


def decode_upload(path: Path, name: str, max_pixels: int | None = MAX_PIXELS):
    """(LoadedImage, metadata, extension) of an uploaded file, checked as ``lowlight enhance`` checks
    its inputs; an :class:`ImageError` naming ``name`` otherwise."""
    from lowlight.imageio import from_pil, open_image, photo_metadata

    try:
        raw = open_image(path, max_pixels=max_pixels)
        try:
            loaded = from_pil(raw)
            metadata = photo_metadata(raw)
            fmt = raw.format
        finally:
            raw.close()
    except ImageError as exc:
        raise ImageError(name, _web_problem(exc.problem.replace(str(path), name))) from exc
    except (OSError, ValueError) as exc:
        raise ImageError(name, f"{_one_line(str(exc)).replace(str(path), name)}; {_READ_HINT}") from exc
    return loaded, metadata, _download_ext(name, fmt)


class JobStore:
    """The last ``max_jobs`` jobs and ONE worker thread that enhances them in upload order.

    ``enhancer_factory()`` is called once, lazily, on the first job (under a lock); it
    returns an :class:`~lowlight.inference.enhancer.Enhancer` (or any callable
    ``(rgb, strength) -> rgb``; a ``progress`` attribute, if it has one, gets tile progress).
    """

    def __init__(self, enhancer_factory: Callable[[], Any], max_jobs: int = MAX_JOBS):
        self._factory = enhancer_factory
        self._enhancer = None
        self._enhancer_lock = threading.Lock()
        self.max_jobs = max_jobs
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------- jobs

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.max_jobs:
                self._jobs.popitem(last=False)  # the oldest; its queued work is skipped
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="lowlight-app-worker", daemon=True)
                self._worker.start()
        self._queue.put(job.id)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def close(self) -> None:
        """Stop the worker after the job it is on (queued jobs stay queued)."""
        self._queue.put(None)

    # ------------------------------------------------------------- work

    def enhancer(self):
        if self._enhancer is None:
            with self._enhancer_lock:
                if self._enhancer is None:
                    self._enhancer = self._factory()
        return self._enhancer

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            job = self.get(job_id)
            if job is None:  # dropped from the store before its turn
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        from lowlight.errors import UserError

        job.state = "running"
        enhancer = None
        try:
            enhancer = self.enhancer()
            if hasattr(enhancer, "progress"):
                enhancer.progress = lambda done, total: setattr(job, "progress", done / max(total, 1))
            enhanced = enhancer(job.loaded.rgb, 1.0)
            job.small_enhanced = _downscale(enhanced)
            job.enhanced = enhanced
            job.progress = 1.0
            job.state = "done"
        except UserError as exc:
            job.error, job.state = _one_line(f"{job.name}: {exc}"), "failed"
        except MemoryError:
            job.error, job.state = f"{job.name}: out of memory while enhancing; try a smaller photo", "failed"
        except Exception as exc:
            job.error, job.state = _one_line(f"{job.name}: enhancing failed ({type(exc).__name__}: {exc})"), "failed"
        finally:
            if enhancer is not None and hasattr(enhancer, "progress"):
                enhancer.progress = None


def _parse_strength(text: str | None) -> float:
    from lowlight.inference.enhancer import check_strength

    if text is None or text == "":
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = text  # check_strength refuses it with the usual message
    try:
        return check_strength(value)
    except ValueError as exc:
        raise ValueError(_one_line(str(exc)).replace("--strength ", "strength ", 1)) from None


def create_app(enhancer_factory: Callable[[], Any], max_pixels: int | None = MAX_PIXELS,
               max_jobs: int = MAX_JOBS):
    """The FastAPI app; ``enhancer_factory()`` is called once, on the first photo."""
    store = JobStore(enhancer_factory, max_jobs=max_jobs)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        store.close()

    app = FastAPI(title="lowlight app", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.store = store

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": _one_line(message)}, status_code=status)

    def find(job_id: str) -> Job | JSONResponse:
        job = store.get(job_id)
        if job is None:
            return error(404, f"no photo with id {job_id!r}: the app keeps the last {store.max_jobs} photos "
                              "(and forgets them when it restarts); upload it again")
        return job

    def not_ready(job: Job) -> JSONResponse:
        if job.state == "failed":
            return error(409, job.error or f"{job.name}: enhancing failed")
        return error(409, f"{job.name}: not enhanced yet ({job.state}); wait until its state is done")

    @app.get("/", response_class=HTMLResponse)
    def page():
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})

    @app.post("/api/jobs")
    async def upload(request: Request, name: str = "photo"):
        name = Path(name.replace("\\", "/")).name[:200] or "photo"
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
            return error(400, f"{name}: file is too large ({int(length) / 2**20:.0f} MB, over "
                              f"{MAX_UPLOAD_BYTES >> 20} MB); save it smaller first")
        folder = Path(tempfile.mkdtemp(prefix="lowlight-app-"))
        try:
            path = folder / ("upload" + Path(name).suffix.lower())
            size = 0
            with open(path, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_UPLOAD_BYTES:
                        return error(400, f"{name}: file is too large (over {MAX_UPLOAD_BYTES >> 20} MB); "
                                          "save it smaller first")
                    f.write(chunk)
            try:
                loaded, metadata, ext = await run_in_threadpool(decode_upload, path, name, max_pixels)
            except ImageError as exc:
                return error(400, str(exc))
            small = await run_in_threadpool(_downscale, loaded.rgb)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        job = Job(secrets.token_hex(8), name, loaded, metadata, ext, small)
        store.add(job)
        return {"id": job.id, "width": job.width, "height": job.height, "name": job.name}

    @app.get("/api/jobs/{job_id}")
    def status(job_id: str):
        job = find(job_id)
        return job if isinstance(job, JSONResponse) else job.status()

    @app.get("/api/jobs/{job_id}/before.png")
    def before(job_id: str):
        job = find(job_id)
        if isinstance(job, JSONResponse):
            return job
        with job.lock:
            if job.before_png is None:
                job.before_png = _png(job.small)
            data = job.before_png
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/jobs/{job_id}/after.png")
    def after(job_id: str, strength: str | None = None):
        from lowlight.inference.tiles import apply_strength

        job = find(job_id)
        if isinstance(job, JSONResponse):
            return job
        try:
            s = _parse_strength(strength)
        except ValueError as exc:
            return error(400, str(exc))
        if job.state != "done":
            return not_ready(job)
        with job.lock:
            data = job.after_png.get(s)
            if data is None:
                data = _png(apply_strength(job.small, job.small_enhanced, s))
                job.after_png[s] = data
                while len(job.after_png) > _PREVIEW_CACHE:
                    job.after_png.popitem(last=False)
            else:
                job.after_png.move_to_end(s)
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/jobs/{job_id}/download")
    def download(job_id: str, strength: str | None = None):
        from lowlight.cli.enhance import _save
        from lowlight.imageio import to_pil
        from lowlight.inference.tiles import apply_strength

        job = find(job_id)
        if isinstance(job, JSONResponse):
            return job
        try:
            s = _parse_strength(strength)
        except ValueError as exc:
            return error(400, str(exc))
        if job.state != "done":
            return not_ready(job)
        # exactly lowlight.inference.enhancer.enhance on a PIL image, then the CLI's writer
        img = to_pil(apply_strength(job.loaded.rgb, job.enhanced, s), job.loaded)
        folder = Path(tempfile.mkdtemp(prefix="lowlight-app-"))
        dst = folder / ("result" + job.ext)
        try:
            _save(img, dst, job.metadata, None)
        except (OSError, ValueError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return error(500, f"{job.download_name}: could not write the result ({exc})")
        return FileResponse(dst, filename=job.download_name, media_type=_media_type(job.ext),
                            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))

    return app


def _media_type(ext: str) -> str:
    import mimetypes

    return mimetypes.guess_type("x" + ext)[0] or "application/octet-stream"
