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

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request  # here: FastAPI resolves the endpoints' annotations in this module
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from lowlight.app.jobs import MAX_JOBS, PREVIEW_SIDE, Job, JobStore, decode_upload, downscale, one_line
from lowlight.imageio import MAX_PIXELS, ImageError

__all__ = ["create_app", "PREVIEW_SIDE", "MAX_UPLOAD_BYTES"]

PAGE = Path(__file__).with_name("page.html")
MAX_UPLOAD_BYTES = 1 << 30  # a 50-megapixel 16-bit TIFF is ~300 MB uncompressed
_PREVIEW_CACHE = 8  # after-previews kept per job (one per strength the slider visited)


def _png(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


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
        raise ValueError(one_line(str(exc)).replace("--strength ", "strength ", 1)) from None


router = APIRouter()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status)


def _find(request: Request, job_id: str) -> Job | JSONResponse:
    store: JobStore = request.app.state.store
    job = store.get(job_id)
    if job is None:
        return _error(404, f"no photo with id {job_id!r}: the app keeps the last {store.max_jobs} photos "
                           "(and forgets them when it restarts); upload it again")
    return job


def _ready(request: Request, job_id: str, strength: str | None) -> tuple[Job, float] | JSONResponse:
    """The finished job and the strength asked for, or the one-line error response."""
    job = _find(request, job_id)
    if isinstance(job, JSONResponse):
        return job
    try:
        s = _parse_strength(strength)
    except ValueError as exc:
        return _error(400, str(exc))
    if job.state == "failed":
        return _error(409, job.error or f"{job.name}: enhancing failed")
    if job.state != "done":
        return _error(409, f"{job.name}: not enhanced yet ({job.state}); wait until its state is done")
    return job, s


@router.get("/", response_class=HTMLResponse)
def page():
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


async def _receive(request: Request, name: str, path: Path) -> JSONResponse | None:
    """Stream the body to ``path``; a body over :data:`MAX_UPLOAD_BYTES` is the error response."""
    too_large = _error(400, f"{name}: file is too large (over {MAX_UPLOAD_BYTES >> 20} MB); save it smaller first")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        return too_large
    size = 0
    with open(path, "wb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                return too_large
            f.write(chunk)
    return None


@router.post("/api/jobs")
async def upload(request: Request, name: str = "photo"):
    name = Path(name.replace("\\", "/")).name[:200] or "photo"
    folder = Path(tempfile.mkdtemp(prefix="lowlight-app-"))
    try:
        path = folder / ("upload" + Path(name).suffix.lower())
        refused = await _receive(request, name, path)
        if refused is not None:
            return refused
        try:
            loaded, metadata, ext = await run_in_threadpool(decode_upload, path, name, request.app.state.max_pixels)
        except ImageError as exc:
            return _error(400, str(exc))
        small = await run_in_threadpool(downscale, loaded.rgb)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    job = Job(secrets.token_hex(8), name, loaded, metadata, ext, small)
    request.app.state.store.add(job)
    return {"id": job.id, "width": job.width, "height": job.height, "name": job.name}


@router.get("/api/jobs/{job_id}")
def status(request: Request, job_id: str):
    job = _find(request, job_id)
    return job if isinstance(job, JSONResponse) else job.status()


@router.get("/api/jobs/{job_id}/before.png")
def before(request: Request, job_id: str):
    job = _find(request, job_id)
    if isinstance(job, JSONResponse):
        return job
    with job.lock:
        if job.before_png is None:
            job.before_png = _png(job.small)
        data = job.before_png
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/api/jobs/{job_id}/after.png")
def after(request: Request, job_id: str, strength: str | None = None):
    from lowlight.inference.tiles import apply_strength

    found = _ready(request, job_id, strength)
    if isinstance(found, JSONResponse):
        return found
    job, s = found
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


@router.get("/api/jobs/{job_id}/download")
def download(request: Request, job_id: str, strength: str | None = None):
    from lowlight.imageio import save_photo, to_pil
    from lowlight.inference.tiles import apply_strength

    found = _ready(request, job_id, strength)
    if isinstance(found, JSONResponse):
        return found
    job, s = found
    # exactly lowlight.inference.enhancer.enhance on a PIL image, then the CLI's writer (save_photo)
    img = to_pil(apply_strength(job.loaded.rgb, job.enhanced, s), job.loaded)
    folder = Path(tempfile.mkdtemp(prefix="lowlight-app-"))
    dst = folder / ("result" + job.ext)
    try:
        save_photo(img, dst, job.metadata)
    except (OSError, ValueError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return _error(500, f"{job.download_name}: could not write the result ({exc})")
    return FileResponse(dst, filename=job.download_name, media_type=_media_type(job.ext),
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))


def create_app(enhancer_factory: Callable[[], Any], max_pixels: int | None = MAX_PIXELS,
               max_jobs: int = MAX_JOBS):
    """The FastAPI app; ``enhancer_factory()`` is called once, on the first photo."""
    store = JobStore(enhancer_factory, max_jobs=max_jobs)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        store.close()

    app = FastAPI(title="lowlight app", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.store, app.state.max_pixels = store, max_pixels
    app.include_router(router)
    return app


def _media_type(ext: str) -> str:
    import mimetypes

    return mimetypes.guess_type("x" + ext)[0] or "application/octet-stream"
