"""The enhancer as MLflow's "model from code": the file MLflow runs to build the pyfunc model.

``log_enhancer_model`` logs this file instead of a pickled ``EnhancerModel`` object, so loading
the model executes this reviewed source, never bytes deserialised from the run's store (the same
rule the checkpoints follow: weights-only, no pickled code).
"""

import mlflow

from lowlight.inference.pyfunc import EnhancerModel

mlflow.models.set_model(EnhancerModel())
