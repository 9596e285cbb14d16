"""The quantile model's file, read and checked before XGBoost sees it.

XGBoost 3.2 checks some array lengths when it loads a tree but not the indices in them:
a crafted or damaged ``.ubj``/``.json`` model (a child index past the end of its tree, a
cycle, a split on a missing feature, a bad parent link, a missing array) kills the whole
process with a segfault or an abort, no message. :func:`parse_model` reads the file in
Python (JSON, or UBJSON with :func:`read_ubjson`), refusing duplicate keys and deep
nesting, and :func:`model_problem` checks its structure with numpy over all trees; only a
model that passes is handed to XGBoost (``lowlight.histbranch.quantiles.QuantileModel.load``).
"""

from __future__ import annotations

import json
import struct

import numpy as np

__all__ = ["MAX_MODEL_BYTES", "read_ubjson", "parse_model", "model_problem"]

MAX_MODEL_BYTES = 256 * 2**20  # the shipped model is 9 MB; a file past this is refused before it is read
# UBJSON's number markers and their big-endian layouts
_UBJ_NUMBERS = dict(zip(b"iUIlLdD", (">b", ">B", ">h", ">i", ">q", ">f", ">d")))
_UBJ_STRUCTS = {m: struct.Struct(f) for m, f in _UBJ_NUMBERS.items()}
_UBJ_DTYPES = {m: np.dtype(f) for m, f in _UBJ_NUMBERS.items()}
_UBJ_LENGTHS = {m: s for m, s in _UBJ_STRUCTS.items() if m not in b"dD"}


def read_ubjson(data: bytes, max_depth: int = 32):
    """Decode the UBJSON that XGBoost writes (``.ubj``), numeric arrays as numpy arrays.

    The model is read and checked here, before XGBoost sees it, because a crafted
    multi-output tree crashes XGBoost already when it dumps the model (``save_raw``).
    Strict where XGBoost's writer is: no duplicate keys, no typed containers of
    non-numbers, no nesting past ``max_depth``; anything else raises ValueError.
    """
    reader = _UbjReader(data, max_depth)
    try:
        out, pos = reader.value(0, 0)
    except (IndexError, struct.error) as exc:
        raise ValueError(f"truncated or malformed UBJSON ({exc})") from None
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes after the end of the model")
    return out


class _UbjReader:
    """One pass over a UBJSON buffer; every method returns ``(value, next position)``."""

    def __init__(self, data: bytes, max_depth: int):
        self.data, self.end, self.max_depth = data, len(data), max_depth

    def length(self, pos):
        st = _UBJ_LENGTHS.get(self.data[pos])
        if st is None:
            raise ValueError(f"expected a length at byte {pos}")
        n = st.unpack_from(self.data, pos + 1)[0]
        if n < 0 or n > self.end:
            raise ValueError(f"bad length {n} at byte {pos}")
        return n, pos + 1 + st.size

    def header(self, pos, depth):
        if depth > self.max_depth:
            raise ValueError(f"nested deeper than {self.max_depth} levels")
        data, kind, count = self.data, None, None
        if data[pos] == 0x24:  # '$': typed container
            kind, pos = data[pos + 1], pos + 2
            if kind not in _UBJ_DTYPES or data[pos] != 0x23:
                raise ValueError(f"typed container of {chr(kind)!r} at byte {pos}")
        if data[pos] == 0x23:  # '#': counted container
            count, pos = self.length(pos + 1)
        return kind, count, pos

    def text(self, pos):
        n, pos = self.length(pos)
        if pos + n > self.end:
            raise ValueError(f"truncated string at byte {pos}")
        return self.data[pos:pos + n].decode("utf-8"), pos + n

    def value(self, pos, depth):
        marker, pos = self.data[pos], pos + 1
        if marker == 0x7B:  # '{'
            return self.obj(pos, depth + 1)
        if marker == 0x5B:  # '['
            return self.array(pos, depth + 1)
        if marker == 0x53:  # 'S'
            return self.text(pos)
        if marker in b"TFZ":
            return {0x54: True, 0x46: False, 0x5A: None}[marker], pos
        st = _UBJ_STRUCTS.get(marker)
        if st is None:
            raise ValueError(f"unknown marker {chr(marker)!r} at byte {pos - 1}")
        return st.unpack_from(self.data, pos)[0], pos + st.size

    def array(self, pos, depth):
        kind, count, pos = self.header(pos, depth)
        if kind is not None:
            dtype = _UBJ_DTYPES[kind]
            return np.frombuffer(self.data, dtype, count=count, offset=pos), pos + count * dtype.itemsize
        out = []
        while (len(out) < count) if count is not None else self.data[pos] != 0x5D:  # ']'
            item, pos = self.value(pos, depth)
            out.append(item)
        return out, pos + (count is None)

    def obj(self, pos, depth):
        kind, count, pos = self.header(pos, depth)
        if kind is not None:
            raise ValueError(f"typed object at byte {pos}")
        out = {}
        while (len(out) < count) if count is not None else self.data[pos] != 0x7D:  # '}'
            key, pos = self.text(pos)
            if key in out:
                raise ValueError(f"duplicate key {key[:40]!r}")
            out[key], pos = self.value(pos, depth)
        return out, pos + (count is None)


def _no_duplicates(pairs):
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate keys in a JSON object")
    return out


def parse_model(data: bytes) -> dict:
    """XGBoost's JSON or UBJSON model as a dict (ValueError if it is neither)."""
    if data[:1] != b"{":
        raise ValueError("neither UBJSON nor JSON")
    if data[1:2] in (b'"', b" ", b"\n", b"\r", b"\t", b"}"):
        model = json.loads(data, object_pairs_hook=_no_duplicates)
    else:
        model = read_ubjson(data)
    if not isinstance(model, dict):
        raise ValueError("not an XGBoost model")
    return model


def model_problem(model: dict, n_features: int, n_targets: int) -> str | None:
    """Why the parsed model would be unsafe to predict with, or None.

    XGBoost 3.2 checks some array lengths when it loads a tree but not the indices in them:
    a child index past the end of its tree, one that points back to an earlier node (a
    cycle), a split on a feature the input lacks, a bad parent link, a missing array, a
    ``tree_info`` target past the last one or a multi-output leaf index out of range kill
    the whole process (segfault or abort, no message) when it loads, dumps or predicts.
    XGBoost numbers nodes so that children come after their parent; requiring that rules
    out cycles. The checks are vectorised over all trees (about 0.1 s for the shipped
    8400-tree model, after 0.3 s of reading it).
    """
    try:
        learner = model["learner"]
        lp = learner["learner_model_param"]
        gb = learner["gradient_booster"]
        if gb.get("name") != "gbtree":
            return f"booster type {str(gb.get('name'))[:40]!r}; lowlight writes 'gbtree' models only"
        gbm = gb["model"]
        num_target, num_feature = int(lp["num_target"]), int(lp["num_feature"])
        if num_target != n_targets:
            return f"model predicts {num_target} values per row, its settings ask for {n_targets} percentiles"
        if num_feature != n_features:
            return f"model expects {num_feature} features, these settings make {n_features}"
        base = np.atleast_1d(np.asarray(json.loads(lp["base_score"]), dtype=np.float64))
        if base.ndim != 1 or len(base) not in (1, num_target) or not np.all(np.isfinite(base)):
            return f"base_score must be 1 or {num_target} finite numbers"
        trees = gbm["trees"]
        info = np.asarray(gbm["tree_info"], dtype=np.int64).ravel()
        indptr = np.asarray(gbm["iteration_indptr"], dtype=np.int64).ravel()
        if int(gbm["gbtree_model_param"]["num_trees"]) != len(trees) or len(info) != len(trees):
            return f"num_trees and tree_info do not match the {len(trees)} trees"
        if np.any((info < 0) | (info >= num_target)):
            return f"tree_info must name one of the {num_target} targets for each tree"
        if len(indptr) < 1 or indptr[0] != 0 or indptr[-1] != len(trees) or np.any(np.diff(indptr) < 0):
            return "iteration_indptr does not partition the trees into rounds"
        if any(len(v) for v in gbm.get("cats", {}).values()):
            return "categorical features; lowlight's features are all numeric"
        if not trees:
            return None
        arrays = _tree_arrays(trees, num_target)
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        return f"unexpected model layout ({type(exc).__name__}: {str(exc)[:80]})"
    return arrays if isinstance(arrays, str) else _tree_problem(arrays, n_features)


def _tree_arrays(trees: list, num_target: int) -> dict | str:
    """The node arrays of all trees, concatenated; or why they cannot be read."""
    if True:  # one block, as in model_problem, so the checks read in XGBoost's order
        n = np.array([int(t["tree_param"]["num_nodes"]) for t in trees], dtype=np.int64)
        leaf_size = np.array([int(t["tree_param"]["size_leaf_vector"]) for t in trees], dtype=np.int64)
        if np.any(n < 1):
            return f"tree {int(np.argmax(n < 1))} has no nodes"
        multi = leaf_size > 1
        if np.any(multi & (leaf_size != num_target)):
            return f"tree {int(np.argmax(multi & (leaf_size != num_target)))} has leaves of the wrong size"
        ids = np.array([int(t["id"]) for t in trees], dtype=np.int64)
        if np.any(ids != np.arange(len(trees))):
            return f"tree {int(np.argmax(ids != np.arange(len(trees))))} has the wrong id"
        # XGBoost reads every one of these arrays; a missing one crashes its loader
        for name, per_node in (("left_children", 1), ("right_children", 1), ("parents", 1), ("split_indices", 1),
                               ("split_conditions", 1), ("split_type", 1), ("default_left", 1),
                               ("loss_changes", 1), ("sum_hessian", 1), ("base_weights", leaf_size)):
            lens = np.array([len(t[name]) for t in trees], dtype=np.int64)
            if np.any(lens != n * per_node):
                return f"tree {int(np.argmax(lens != n * per_node))}: {name} has the wrong length"
        if any(len(t[k]) for t in trees for k in ("categories", "categories_nodes", "categories_segments",
                                                  "categories_sizes")):
            return "categorical splits; lowlight's features are all numeric"

        def cat(name, dtype=np.int64):
            return np.concatenate([np.asarray(t[name], dtype=dtype).ravel() for t in trees])

        left, right, parent = cat("left_children"), cat("right_children"), cat("parents")
        split, kind, default = cat("split_indices"), cat("split_type"), cat("default_left")
        cond = cat("split_conditions", np.float64)
        weights = {i: np.asarray(trees[i]["leaf_weights"], dtype=np.float64) for i in np.flatnonzero(multi)}
    return {"n": n, "leaf_size": leaf_size, "multi": multi, "left": left, "right": right, "parent": parent,
            "split": split, "kind": kind, "default": default, "cond": cond, "weights": weights,
            "n_trees": len(trees)}


def _tree_problem(a: dict, n_features: int) -> str | None:
    """Index, cycle and parent-link checks over every node of every tree at once."""
    n, leaf_size, multi, weights = a["n"], a["leaf_size"], a["multi"], a["weights"]
    left, right, parent, split, kind, default, cond = (a[k] for k in ("left", "right", "parent", "split", "kind",
                                                                     "default", "cond"))
    trees = range(a["n_trees"])
    tree = np.repeat(np.arange(len(trees)), n)
    start = np.repeat(np.cumsum(n) - n, n)
    node = np.arange(len(tree)) - start
    size = n[tree]
    inner = left != -1
    bad = (left < -1) | (inner & ~((left > node) & (left < size) & (right > node) & (right < size)))
    if np.any(bad):
        at = int(np.argmax(bad))
        return f"tree {tree[at]} node {node[at]} has a child index out of range or not after its node (a cycle)"
    # XGBoost's loader walks the parent links (a bad one crashes it): each node but the root
    # must be the child of exactly one node, and say so
    kids = np.concatenate([left[inner], right[inner]]) + np.tile(start[inner], 2)
    owners = np.tile(node[inner], 2)
    times = np.bincount(kids, minlength=len(tree))
    wrong_parent = np.zeros(len(tree), bool)
    wrong_parent[kids] = parent[kids] != owners
    n_leaves = np.bincount(tree[~inner], minlength=len(trees))
    checks = [
        ((node == 0) & ~np.isin(parent, (-1, 2**31 - 1)), "is a root with a parent"),
        ((node > 0) & (times != 1), "is not the child of exactly one node"),
        (wrong_parent, "names the wrong parent"),
        (inner & ((split < 0) | (split >= n_features)), f"splits on a feature outside 0..{n_features - 1}"),
        ((default != 0) & (default != 1), "has a default direction other than 0 or 1"),
        (inner & (kind != 0), "has a categorical split"),
        (~inner & ~multi[tree] & ~np.isfinite(cond), "has a leaf value that is not finite"),
        (~inner & multi[tree] & ((right < 0) | (right >= n_leaves[tree])), "has a leaf index out of range"),
    ]
    for bad, what in checks:
        if np.any(bad):
            at = int(np.argmax(bad))
            return f"tree {tree[at]} node {node[at]} {what}"
    for i, w in weights.items():
        if w.shape != (n_leaves[i] * leaf_size[i],) or not np.all(np.isfinite(w)):
            return f"tree {i} has leaf weights of the wrong size or not finite"
    return None


