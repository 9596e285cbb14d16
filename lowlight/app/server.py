"""The ``lowlight app`` web server: one page, a job store and one enhancing thread.

API (all errors are JSON ``{"error": "<one line>"}``):

- ``GET /``: the page (``page.html`` beside this file);
- ``POST /api/jobs?name=FILE`` with the image bytes as the raw body (no multipart):
  decoded and checked at once (empty, not an image, animated, over ``max_pixels``
  from the header, as ``lowlight enhance`` does), then queued; returns
  ``{"id", "width", "height", "name"}``;
- ``GET /api/jobs/{id}``: ``{"state": queued|running|done|failed, "progress": 0..1, "error",
  "auto_shadows"}`` (the shadow lift's amount in auto for this photo, once done);
- ``GET /api/jobs/{id}/before.png`` and ``/after.png?strength=S&exposure=EV&shadows=A``: previews,
  at most :data:`PREVIEW_SIDE` pixels on the long side;
- ``GET /api/jobs/{id}/download?strength=S&exposure=EV&shadows=A``: the full-resolution result,
  the very pixels (and file: format, EXIF, ICC profile) ``lowlight enhance --strength S
  --exposure EV --shadows A`` writes. ``shadows`` left out (or ``auto``) is the command's
  default, auto; ``exposure`` left out is 0.

Refusals: 400 a bad file or name, 413 a photo beyond the memory budget itself, 421/403 a
request that is not from the app's own page (:mod:`lowlight.app.guard`), 503 with
``Retry-After`` while the budget is spent by other photos (:mod:`lowlight.app.budget`), 507 a
full temporary folder.

Each photo is enhanced once, at strength 1 and up to the shadow lift
(:meth:`~lowlight.inference.enhancer.Enhancer.unlifted`), and kept with its decoded input:
any exposure and shadows setting is then one table lookup and one lift (:meth:`~lowlight.inference.enhancer.Enhancer.lift`, on
the preview for a preview) and any strength a blend
(:func:`lowlight.inference.tiles.apply_strength`), the same steps the enhancer runs. The lift
reads the photo through a 64-pixel thumbnail, so a preview's lift is the full-size one's,
downscaled. The store keeps the last :data:`MAX_JOBS` photos.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request  # here: FastAPI resolves the endpoints' annotations in this module
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from lowlight.app.budget import KEPT_BYTES_PER_PIXEL, WORK_BYTES_PER_PIXEL, MemoryBudget, Reservation, decode_slots
from lowlight.app.guard import OwnPageOnly
from lowlight.app.jobs import (MAX_JOBS, PREVIEW_SIDE, Job, JobStore, declared_pixels, decode_upload, downscale,
                               media_type, one_line, preview_png)
from lowlight.app.query import parse_exposure, parse_shadows, parse_strength
from lowlight.imageio import MAX_PIXELS, READ_EXTENSIONS, ImageError

__all__ = ["create_app", "PREVIEW_SIDE", "MAX_UPLOAD_BYTES"]

PAGE = Path(__file__).with_name("page.html")
MAX_UPLOAD_BYTES = 1 << 30  # a 50-megapixel 16-bit TIFF is ~300 MB uncompressed
_PREVIEW_CACHE = 8  # after-previews kept per job (one per strength and shadows the sliders visited)
NAME_MAX = 255  # bytes in a file name on every common file system: the download must be savable
RETRY_AFTER_S = 10


router = APIRouter()


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)


def _find(request: Request, job_id: str) -> Job | JSONResponse:
    store: JobStore = request.app.state.store
    job = store.get(job_id)
    if job is None:
        return _error(404, f"no photo with id {job_id!r}: the app keeps the last {store.max_jobs} photos "
                           "(and forgets them when it restarts); upload it again")
    return job


def _ready(request: Request, job_id: str, strength: str | None, shadows: str | None,
           exposure: str | None) -> tuple[Job, float, float, float] | JSONResponse:
    """The finished job, the strength, the shadow lift's amount asked for (auto: the photo's own) and the
    exposure compensation, or the one-line error response."""
    job = _find(request, job_id)
    if isinstance(job, JSONResponse):
        return job
    try:
        s, amount, ev = parse_strength(strength), parse_shadows(shadows), parse_exposure(exposure)
    except ValueError as exc:
        return _error(400, str(exc))
    if job.state == "failed":
        return _error(409, job.error or f"{job.name}: enhancing failed")
    if job.state != "done":
        return _error(409, f"{job.name}: not enhanced yet ({job.state}); wait until its state is done")
    return job, s, job.auto_shadows if amount is None else amount, ev


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


def _checked_name(name: str) -> str | JSONResponse:
    """The upload's file name as shown and downloaded, or the 400 that says what is wrong with it."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):  # a NUL or a newline would reach a header
        return _error(400, "the file name contains a control character (NUL, newline...); rename the file")
    name = Path(name.replace("\\", "/")).name or "photo"
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX:
        return _error(400, f"the file name is longer than {NAME_MAX} bytes; rename the file")
    return name


def _no_space(name: str, exc: OSError) -> JSONResponse:
    """507 when the temporary folder is full (the upload is written there first), else a one-line 500."""
    where = tempfile.gettempdir()
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return _error(507, f"{name}: the temporary folder {where} is full ({exc.strerror}); free space there "
                           "or restart the app with TMPDIR set to a folder that has room")
    return _error(500, f"{name}: cannot write to the temporary folder {where} ({exc.strerror or exc})")


def _admit(request: Request, name: str, pixels: int | None):
    """The upload's memory reservation (lowlight.app.budget), or the 413 / 503 refusal."""
    budget: MemoryBudget = request.app.state.budget
    store: JobStore = request.app.state.store
    if pixels is None:
        return budget.reserve(0)  # decode_upload will name the problem
    if not budget.fits_at_all(pixels) or pixels * KEPT_BYTES_PER_PIXEL > store.max_bytes:
        return _error(413, f"{name}: {pixels / 1e6:.1f} megapixels need about "
                           f"{pixels * WORK_BYTES_PER_PIXEL / 2**30:.1f} GB to enhance, more than this app's "
                           f"memory budget ({budget.limit / 2**30:.1f} GB); save it smaller first")
    reservation = budget.reserve(pixels)
    if reservation is None:
        return _error(503, f"{name}: the app is busy with other photos (its memory budget is spent); "
                           f"try again in {RETRY_AFTER_S} s", headers={"Retry-After": str(RETRY_AFTER_S)})
    return reservation


@router.post("/api/jobs")
async def upload(request: Request, name: str = "photo"):
    name = _checked_name(name)
    if isinstance(name, JSONResponse):
        return name
    suffix = Path(name).suffix.lower()
    try:
        folder = Path(tempfile.mkdtemp(prefix="lowlight-app-"))
    except OSError as exc:
        return _no_space(name, exc)
    reservation, handed_over = None, False
    try:
        # decoding picks the format from the bytes; the temp name keeps only an extension lowlight reads
        path = folder / ("upload" + (suffix if suffix in READ_EXTENSIONS else ""))
        try:
            refused = await _receive(request, name, path)
        except OSError as exc:
            return _no_space(name, exc)
        if refused is not None:
            return refused
        reservation = _admit(request, name, await run_in_threadpool(declared_pixels, path))
        if isinstance(reservation, JSONResponse):
            return reservation
        async with request.app.state.decodes:
            try:
                loaded, metadata, ext = await run_in_threadpool(decode_upload, path, name,
                                                                request.app.state.max_pixels)
            except ImageError as exc:
                return _error(400, str(exc))
            small = await run_in_threadpool(downscale, loaded.rgb)
        job = Job(secrets.token_hex(8), name, loaded, metadata, ext, small, reservation=reservation)
        request.app.state.store.add(job)  # the worker releases the reservation once the job is enhanced
        handed_over = True
    finally:
        if isinstance(reservation, Reservation) and not handed_over:
            reservation.release()
        shutil.rmtree(folder, ignore_errors=True)
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
            job.before_png = preview_png(job.small)
        data = job.before_png
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/api/jobs/{job_id}/after.png")
def after(request: Request, job_id: str, strength: str | None = None, shadows: str | None = None,
          exposure: str | None = None):
    from lowlight.inference.tiles import apply_strength

    found = _ready(request, job_id, strength, shadows, exposure)
    if isinstance(found, JSONResponse):
        return found
    job, s, amount, ev = found
    enhancer = request.app.state.store.enhancer()
    with job.lock:
        data = job.after_png.get((s, amount, ev))
        if data is None:
            lifted = enhancer.lift(job.small_unlifted, job.small, amount, ev)
            data = preview_png(apply_strength(job.small, lifted, s))
            job.after_png[(s, amount, ev)] = data
            while len(job.after_png) > _PREVIEW_CACHE:
                job.after_png.popitem(last=False)
        else:
            job.after_png.move_to_end((s, amount, ev))
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/api/jobs/{job_id}/download")
def download(request: Request, job_id: str, strength: str | None = None, shadows: str | None = None,
             exposure: str | None = None):
    from lowlight.image_writer import save_photo
    from lowlight.imageio import to_pil
    from lowlight.inference.tiles import apply_strength

    found = _ready(request, job_id, strength, shadows, exposure)
    if isinstance(found, JSONResponse):
        return found
    job, s, amount, ev = found
    # exactly lowlight.inference.enhancer.enhance on a PIL image, then the CLI's writer (save_photo)
    lifted = request.app.state.store.enhancer().lift(job.unlifted, job.loaded.rgb, amount, ev)
    img = to_pil(apply_strength(job.loaded.rgb, lifted, s), job.loaded)
    try:
        folder = Path(tempfile.mkdtemp(prefix="lowlight-app-"))
    except OSError as exc:
        return _no_space(job.download_name, exc)
    dst = folder / ("result" + job.ext)
    try:
        save_photo(img, dst, job.metadata)
    except (OSError, ValueError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, ImageError):  # the format's own limits (WebP: 16383 pixels a side)
            return _error(422, f"{job.download_name}: {exc.problem}")
        if isinstance(exc.__cause__, OSError):
            return _no_space(job.download_name, exc.__cause__)
        return _error(500, f"{job.download_name}: could not write the result ({exc})")
    return FileResponse(dst, filename=job.download_name, media_type=media_type(job.ext),
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))


def create_app(enhancer_factory: Callable[[], Any], max_pixels: int | None = MAX_PIXELS,
               max_jobs: int = MAX_JOBS, max_bytes: int | None = None, work_bytes: int | None = None,
               host_names: tuple[str, ...] = ()):
    """The FastAPI app; ``enhancer_factory()`` is called once, on the first photo.

    ``max_bytes``: what the store keeps (default: a quarter of the machine's memory);
    ``work_bytes``: what photos being decoded and enhanced may take (default: half of it);
    ``host_names``: names besides the listening address that the Host header may say
    (:mod:`lowlight.app.guard`)."""
    store = JobStore(enhancer_factory, max_jobs=max_jobs, max_bytes=max_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        store.close()

    app = FastAPI(title="lowlight app", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.store, app.state.max_pixels = store, max_pixels
    app.state.budget, app.state.decodes = MemoryBudget(work_bytes), asyncio.Semaphore(decode_slots())
    app.include_router(router)
    app.add_middleware(OwnPageOnly, names=host_names)
    return app

