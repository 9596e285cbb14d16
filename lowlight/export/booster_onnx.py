"""The quantile booster as an ONNX-ML ``TreeEnsembleRegressor``, built from its own trees.

Only the step "feature rows (N, F) float32 -> raw tree outputs (N, K)" moves to ONNX,
what ``xgboost.Booster.inplace_predict`` does; features and the decoding of raw outputs
into percentiles stay the shared NumPy code (:mod:`lowlight.histbranch.quantile_features`,
:mod:`lowlight.histbranch.quantile_targets`), so any number of features and targets works.

XGBoost's JSON model is read as it is: a node goes left when ``x < split_condition``
(ONNX's ``BRANCH_LT``), missing values follow ``default_left``, a leaf's value is its
``split_condition`` (or its slice of ``leaf_weights`` in a multi-output tree), tree ``i``
adds to target ``tree_info[i]``, and ``base_score`` (one per target) starts the sum.
"""

from __future__ import annotations

import json

import numpy as np

from lowlight.inference.onnx_contract import BOOSTER_FORMAT, BOOSTER_INPUT, BOOSTER_OUTPUT, META_KEY

__all__ = ["booster_to_onnx"]

ML_OPSET = 3  # ai.onnx.ml's TreeEnsembleRegressor with float node values
ONNX_OPSET = 17


def _tree_nodes(tree: dict, tree_id: int, target: int, n_targets: int, out: dict) -> None:
    """Append one XGBoost tree's nodes and leaf weights to the attribute lists in ``out``."""
    left = np.asarray(tree["left_children"], dtype=np.int64)
    right = np.asarray(tree["right_children"], dtype=np.int64)
    split = np.asarray(tree["split_indices"], dtype=np.int64)
    cond = np.asarray(tree["split_conditions"], dtype=np.float32)
    default = np.asarray(tree["default_left"], dtype=np.int64)
    vector = int(tree["tree_param"]["size_leaf_vector"]) > 1
    weights = np.asarray(tree.get("leaf_weights", []), dtype=np.float32)
    leaf = left == -1
    n = len(left)
    out["nodes_treeids"] += [tree_id] * n
    out["nodes_nodeids"] += list(range(n))
    out["nodes_featureids"] += np.where(leaf, 0, split).tolist()
    out["nodes_values"] += np.where(leaf, 0.0, cond).tolist()
    out["nodes_modes"] += ["LEAF" if x else "BRANCH_LT" for x in leaf]
    out["nodes_truenodeids"] += np.where(leaf, 0, left).tolist()
    out["nodes_falsenodeids"] += np.where(leaf, 0, right).tolist()
    out["nodes_missing_value_tracks_true"] += np.where(leaf, 0, default).tolist()
    for node in np.flatnonzero(leaf):
        if vector:  # a multi-output leaf: right_children holds its row of leaf_weights
            values = weights[right[node] * n_targets:(right[node] + 1) * n_targets]
            targets = range(n_targets)
        else:
            values, targets = [cond[node]], [target]
        for t, v in zip(targets, values):
            out["target_treeids"].append(tree_id)
            out["target_nodeids"].append(int(node))
            out["target_ids"].append(int(t))
            out["target_weights"].append(float(v))


def booster_to_onnx(model: dict, settings: dict):
    """An ``onnx.ModelProto`` predicting what the XGBoost JSON ``model`` (``save_raw("json")``) predicts.

    ``settings`` (lowlight's quantile settings, :meth:`QuantileModel._meta`) travel in the
    file's metadata with :data:`BOOSTER_FORMAT`, so the runtime rebuilds the same features.
    """
    import onnx
    from onnx import TensorProto, helper

    learner = model["learner"]
    lp = learner["learner_model_param"]
    n_targets, n_features = int(lp["num_target"]), int(lp["num_feature"])
    base = np.atleast_1d(np.asarray(json.loads(lp["base_score"]), dtype=np.float64))
    base = np.broadcast_to(base, (n_targets,))
    gbm = learner["gradient_booster"]["model"]
    info = [int(t) for t in np.asarray(gbm["tree_info"]).ravel()]
    attrs: dict[str, list] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes", "nodes_truenodeids",
        "nodes_falsenodeids", "nodes_missing_value_tracks_true", "target_treeids", "target_nodeids", "target_ids",
        "target_weights")}
    for i, tree in enumerate(gbm["trees"]):
        _tree_nodes(tree, i, info[i], n_targets, attrs)
    node = helper.make_node("TreeEnsembleRegressor", [BOOSTER_INPUT], [BOOSTER_OUTPUT], domain="ai.onnx.ml",
                            n_targets=n_targets, base_values=[float(b) for b in base], aggregate_function="SUM",
                            post_transform="NONE", **attrs)
    graph = helper.make_graph(
        [node], "lowlight_quantiles",
        [helper.make_tensor_value_info(BOOSTER_INPUT, TensorProto.FLOAT, ["rows", n_features])],
        [helper.make_tensor_value_info(BOOSTER_OUTPUT, TensorProto.FLOAT, ["rows", n_targets])])
    proto = helper.make_model(graph, producer_name="lowlight",
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                             helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
    proto.ir_version = 8  # read by every onnxruntime since 1.10
    helper.set_model_props(proto, {META_KEY: json.dumps({"format": BOOSTER_FORMAT, "quantiles": settings})})
    onnx.checker.check_model(proto)
    return proto
