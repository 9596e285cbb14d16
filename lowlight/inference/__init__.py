"""Inference: the one ``enhance`` path of the CLI, the evaluate stage and the tests.

``enhancer`` runs the quantile model, the mapping and the network (padding, tiles,
devices, strength), ``shipped`` names the weights inside the package.
"""
