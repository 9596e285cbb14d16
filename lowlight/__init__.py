"""lowlight: low-light image enhancement by learned histogram mapping plus a small network.

The pipeline (``dvc.yaml``) calls into this package; ``lowlight.enhance`` is the
single inference path used by the command line, the evaluate stage and the tests.
"""

__version__ = "0.1.0"


def enhance(image, strength: float | None = None, **kwargs):
    """Enhance one photo (PIL image or uint8 array; same kind out). ``strength``: 0 gives the
    input back, 1 (the default) the full enhancement, up to 1.5 brighter still. Other keywords
    (``enhancer``, ``device``, ``max_pixels``): see :func:`lowlight.inference.enhancer.enhance`."""
    from lowlight.inference.enhancer import enhance as _enhance

    return _enhance(image, strength=strength, **kwargs)
