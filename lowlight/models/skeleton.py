"""A checkpoint's model rebuilt as a skeleton: ``meta`` tensors, no memory, no initialisation.

:mod:`lowlight.models.checkpoint` checks a file's weights against this skeleton before it
builds the model for real, so crafted constructor arguments are refused before anything
is allocated.
"""

from __future__ import annotations

import contextlib
import threading

import torch
from torch import nn

from lowlight.errors import UserError, short_repr
from lowlight.models import build_model

__all__ = ["SkeletonError", "meta_model"]

_SKELETON_LOCK = threading.Lock()  # one skeleton at a time: the initialiser swap is process-wide


class SkeletonError(UserError, ValueError):
    """The model cannot be rebuilt from these arguments (one line; the checkpoint loader names the file)."""


class _TooLarge(Exception):
    pass


@contextlib.contextmanager
def _initialisers_skipped(thread: int):
    """``torch.nn.init``'s initialisers as no-ops for ``thread`` while a skeleton is built.

    The weights come from the file; on the meta device the initialisers' first call imports
    torch's reference implementations, 1-3 s of every ``lowlight enhance`` start-up.
    Other threads keep the real ones (transformers' ``no_init_weights`` does the same).
    """
    init = torch.nn.init
    saved = {n: getattr(init, n) for n in dir(init) if n.endswith("_") and not n.startswith("_")}

    def skipping(real):
        def initialiser(tensor, *args, **kwargs):
            return tensor if threading.get_ident() == thread else real(tensor, *args, **kwargs)
        return initialiser

    for n, real in saved.items():
        setattr(init, n, skipping(real))
    try:
        yield
    finally:
        for n, real in saved.items():
            setattr(init, n, real)


def meta_model(name: str, args: dict, max_parameters: int, max_tensors: int) -> nn.Module:
    """Build the model without memory (``meta`` tensors), refusing it as soon as it grows past the bounds.

    Checkpoint arguments are data from a file: ``widths: [131072] * 4`` asks for 618 GB.
    The registration hooks stop the constructor at the first parameter past the bound.
    Raises :class:`SkeletonError` with one line saying why.
    """
    from torch.nn.modules import module as torch_module

    count = {"numel": 0, "items": 0}
    me = threading.get_ident()  # the hooks are process-wide; count this thread's model only

    def grow(_module, _name, item) -> None:
        if threading.get_ident() != me:
            return
        count["numel"] += item.numel() if isinstance(item, torch.Tensor) else 0
        count["items"] += 1
        if count["numel"] > max_parameters or count["items"] > max_tensors:
            raise _TooLarge

    hooks = [torch_module.register_module_parameter_registration_hook(grow),
             torch_module.register_module_buffer_registration_hook(grow),
             torch_module.register_module_module_registration_hook(grow)]
    try:
        with _SKELETON_LOCK, torch.device("meta"), _initialisers_skipped(me):
            return build_model(name, **args)
    except _TooLarge:
        raise SkeletonError(f"its model_args {short_repr(args)} make a model of more than "
                            f"{max_parameters:,} parameters or {max_tensors:,} tensors or modules; "
                            "refused before allocating it") from None
    except Exception as exc:  # noqa: BLE001 - a constructor fed crafted arguments can raise anything
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SkeletonError(f"cannot rebuild its model: {first[:200]}") from None
    finally:
        for hook in hooks:
            hook.remove()
