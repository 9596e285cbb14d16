"""The fitting side's hand-over: a checkpoint and a quantile model written as the ONNX pair the tool runs.

``network_onnx`` and ``booster_onnx`` build the two graphs, ``check`` compares the pair with the
PyTorch + XGBoost pipeline, ``pair`` writes both or neither. The ``export`` stage runs it on the
pipeline's models; ``python -m lowlight.export --shipped`` on the package's own weights. Needs
torch, XGBoost and onnx (the ``pipeline`` extra); the runtime side needs none of them.
"""
