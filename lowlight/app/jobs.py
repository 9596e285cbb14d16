"""The ``lowlight app`` job store: uploaded photos, checked, queued and enhanced by one thread.

Each photo is decoded and checked at once (as ``lowlight enhance`` checks a file), then
enhanced once, at strength 1 and up to the shadow lift, by the store's single worker thread, and
kept with its decoded input. Any shadows setting afterwards is one lift (milliseconds on a
preview) and any strength a blend. The store keeps the last :data:`MAX_JOBS`, and
no more than its byte bound (:data:`lowlight.app.budget.KEPT_BYTES_PER_PIXEL` a pixel): the
oldest photos go first.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lowlight.app.budget import KEPT_BYTES_PER_PIXEL, Reservation, machine_memory
from lowlight.imageio import MAX_PIXELS, WRITE_FORMATS, ImageError, LoadedImage

__all__ = ["Job", "JobStore", "decode_upload", "declared_pixels", "downscale", "preview_png", "media_type", "one_line",
           "MAX_JOBS", "PREVIEW_SIDE"]
PREVIEW_SIDE = 1280

MAX_JOBS = 20
_FORMAT_EXT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
_READ_HINT = "choose a photo file (JPEG, PNG, WebP, TIFF or BMP)"


@dataclass(eq=False)
class Job:
    """One uploaded photo and its enhancement (kept at strength 1, before the shadow lift)."""

    id: str
    name: str
    loaded: LoadedImage
    metadata: dict
    ext: str  # the download's extension
    small: np.ndarray  # the input, downscaled for previews
    state: str = "queued"
    progress: float = 0.0
    error: str | None = None
    unlifted: np.ndarray | None = None  # uint8 RGB, full size, strength 1, before the shadow lift
    small_unlifted: np.ndarray | None = None
    auto_shadows: float | None = None  # the lift's amount in auto, read from the full-size input
    before_png: bytes | None = None
    after_png: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reservation: Reservation | None = None  # the working memory held until enhanced (lowlight.app.budget)

    @property
    def kept_bytes(self) -> int:
        """What this job keeps once done, counted before it is: the store's bound must hold at once."""
        return self.width * self.height * KEPT_BYTES_PER_PIXEL

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
        return {"state": self.state, "progress": round(float(self.progress), 4), "error": self.error,
                "auto_shadows": None if self.auto_shadows is None else round(self.auto_shadows, 4)}


def one_line(text: str) -> str:
    return " ".join(str(text).split())


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
        raise ImageError(name, f"{one_line(str(exc)).replace(str(path), name)}; {_READ_HINT}") from exc
    return loaded, metadata, _download_ext(name, fmt)


def declared_pixels(path: Path) -> int | None:
    """The pixel count an uploaded file's header declares (None: no header lowlight reads;
    :func:`decode_upload` then names the problem). Nothing is decoded."""
    from PIL import Image

    from lowlight.imageio import DECODER_ERRORS, READ_FORMATS
    from lowlight.metadata import quiet_exif_parse

    try:
        with quiet_exif_parse(), Image.open(path, formats=READ_FORMATS) as img:
            width, height = img.size
    except (*DECODER_ERRORS, Image.DecompressionBombError):
        return None
    return width * height


class JobStore:
    """The last ``max_jobs`` jobs, at most ``max_bytes`` kept, and ONE worker thread that enhances them in upload order.

    ``enhancer_factory()`` is called once, lazily, on the first job (under a lock); it
    returns an :class:`~lowlight.inference.enhancer.Enhancer` (its ``progress`` attribute gets
    tile progress).
    """

    def __init__(self, enhancer_factory: Callable[[], Any], max_jobs: int = MAX_JOBS, max_bytes: int | None = None):
        self._factory = enhancer_factory
        self._enhancer = None
        self._enhancer_lock = threading.Lock()
        self.max_jobs = max_jobs
        self.max_bytes = int(max_bytes if max_bytes is not None else machine_memory() // 4)
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------- jobs

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
            kept = sum(j.kept_bytes for j in self._jobs.values())
            while len(self._jobs) > 1 and (len(self._jobs) > self.max_jobs or kept > self.max_bytes):
                _, old = self._jobs.popitem(last=False)  # the oldest; its queued work is skipped
                kept -= old.kept_bytes
                if old.state == "queued" and old.reservation is not None:
                    old.reservation.release()
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
            unlifted = enhancer.unlifted(job.loaded.rgb)
            job.auto_shadows = enhancer.shadow_amount(job.loaded.rgb)
            job.small_unlifted = downscale(unlifted)
            job.unlifted = unlifted
            job.progress = 1.0
            job.state = "done"
        except UserError as exc:
            job.error, job.state = one_line(f"{job.name}: {exc}"), "failed"
        except MemoryError:
            job.error, job.state = f"{job.name}: out of memory while enhancing; try a smaller photo", "failed"
        except Exception as exc:
            job.error, job.state = one_line(f"{job.name}: enhancing failed ({type(exc).__name__}: {exc})"), "failed"
        finally:
            if job.reservation is not None:
                job.reservation.release()
            if enhancer is not None and hasattr(enhancer, "progress"):
                enhancer.progress = None


def downscale(rgb: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    if max(h, w) <= side:
        return rgb
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def preview_png(rgb: np.ndarray) -> bytes:
    """A preview's PNG bytes (fast compression: it is shown once and thrown away)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def media_type(ext: str) -> str:
    """The download's Content-Type for a file extension."""
    import mimetypes

    return mimetypes.guess_type("x" + ext)[0] or "application/octet-stream"
