"""lowlight: low-light image enhancement by learned histogram mapping plus a small network.

The pipeline (``dvc.yaml``) calls into this package; ``lowlight.enhance`` is the
single inference path used by the command line, the evaluate stage and the tests.
"""

__version__ = "0.1.0"


def enhance(image, **kwargs):
    """Enhance one photo (PIL image or uint8 array; same kind out). See :mod:`lowlight.inference`."""
    from .inference import enhance as _enhance

    return _enhance(image, **kwargs)
