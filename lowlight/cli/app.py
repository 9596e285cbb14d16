"""``lowlight app``: enhance photos in a local web page.

Serves one page at http://HOST:PORT/ (default http://127.0.0.1:7860/): drop
photos on it (or choose them), compare before and after with a draggable split,
set the strength, the exposure (-3 to +3 stops) and the shadows (auto, or 0 to 2), and
download the full-resolution result, the very file ``lowlight enhance --strength S
--exposure EV --shadows A`` would write (same
pixels, format, EXIF and ICC profile; GIF inputs come back as PNG). Photos stay on this computer; the app
keeps the last 20 in memory, within a quarter of the machine's memory. The weights
are loaded on the first photo. Stop it with Ctrl-C.

It answers only its own page: a request from another web page (its Origin) or
under another name (its Host header, DNS rebinding) is refused.

Needs the app extra: pip install 'lowlight[app]' (FastAPI, uvicorn).
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from lowlight.cli.helptext import plain
from lowlight.errors import UserError
from lowlight.imageio import MAX_PIXELS

__all__ = ["add_parser", "run", "AppError"]


class AppError(UserError):
    """A setting of ``lowlight app`` the person can fix (port taken, missing extra)."""


def add_parser(sub) -> None:
    p = sub.add_parser("app", help="enhance photos in a local web page", description=plain(__doc__),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 lets every machine "
                   "on the network upload photos and download every photo the app keeps, with no password "
                   "(default: %(default)s, this computer only; see docs/reliability.md)")
    p.add_argument("--port", type=int, default=7860, help="default: %(default)s")
    p.add_argument("--weights", type=Path, help="network, exported .onnx (default: the shipped one; a .pt checkpoint needs PyTorch)")
    p.add_argument("--quantile-model", type=Path, help="quantile model, exported .onnx (default: the shipped one; a .ubj needs XGBoost)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="default: %(default)s")
    p.add_argument("--max-pixels", type=int, metavar="N",
                   help=f"refuse photos with more pixels, from the header before decoding (default: {MAX_PIXELS}; "
                        "enhancing takes about 30 bytes of memory a pixel, and the app keeps each photo it "
                        "enhanced); also raises Pillow's own limit")
    p.set_defaults(handler=run)


def _check_options(args) -> tuple[Path, Path]:
    from lowlight.inference.enhancer import (
        EnhanceError,
        resolve_device,
        resolve_weights,
    )

    if not 0 <= args.port <= 65535:
        raise AppError(f"--port {args.port}: must be from 0 to 65535")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise EnhanceError(f"--max-pixels {args.max_pixels}: must be a positive number of pixels")
    resolve_device(args.device)
    return resolve_weights(args.quantile_model, args.weights)


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family = infos[0][0]
        return socket.create_server((host, port), family=family, reuse_port=False)
    except socket.gaierror as exc:
        raise AppError(f"--host {host}: unknown address ({exc.strerror}); use 127.0.0.1 or 0.0.0.0") from exc
    except OSError as exc:
        hint = "pick another with --port N" if port else "check --host"
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise AppError(f"--host {host} --port {port}: cannot listen there ({reason}); {hint}") from exc


def run(args) -> int:
    try:
        import uvicorn

        from lowlight.app.server import create_app
    except ImportError as exc:
        raise AppError(f"lowlight app needs FastAPI and uvicorn ({exc}); install them with "
                       "pip install 'lowlight[app]'") from exc
    from PIL import Image

    qm, net = _check_options(args)
    device = args.device

    def factory():
        from lowlight.inference.enhancer import Enhancer

        return Enhancer.from_files(qm, net, device=device)

    max_pixels = MAX_PIXELS if args.max_pixels is None else args.max_pixels
    if args.max_pixels is not None and Image.MAX_IMAGE_PIXELS is not None and args.max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = args.max_pixels  # the limit asked for; Pillow's own would refuse first
    wildcard = args.host in ("0.0.0.0", "::", "")
    # the Host header must name the address a request reached, or --host (lowlight.app.guard)
    app = create_app(factory, max_pixels=max_pixels, host_names=() if wildcard else (args.host,))
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    host = "127.0.0.1" if wildcard else f"[{args.host}]" if ":" in args.host else args.host
    print(f"lowlight app: http://{host}:{port}/" + (" (and this machine's network address, by number, from "
                                                    "other machines)" if wildcard else ""), flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0

