"""The ``lowlight`` command: ``main`` dispatches to ``enhance`` and ``evaluate``.

``output_plan`` proves before anything is written that no output can overwrite an
input; ``helptext`` turns docstrings into plain help text.
"""
