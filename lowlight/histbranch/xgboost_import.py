"""How XGBoost is imported: passive OpenMP waits always, and without its scikit-learn/pandas
integrations where a process only predicts (the command line's start-up)."""

from __future__ import annotations

import os

__all__ = ["xgboost_module", "import_xgboost_lean"]


def xgboost_module():
    """``import xgboost``, with OpenMP told to wait passively (see below)."""
    # XGBoost's OpenMP threads spin while waiting for each other. On a machine whose cores
    # are busy with other work that spinning is ruinous: fitting the default model on LOL
    # with 2 threads took 90 s instead of 13 s. Passive waiting costs nothing measurable on
    # an idle machine. libgomp reads this once, when XGBoost's library loads; a value the
    # user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import xgboost

    return xgboost


def import_xgboost_lean() -> None:
    """Import XGBoost without its scikit-learn and pandas integrations, for processes that only predict.

    ``import xgboost`` imports scikit-learn and pandas when they are installed (about 1.7 s of
    the 2 s it takes here); prediction from NumPy arrays needs neither. The command line calls
    this before loading the quantile model; in that process ``xgboost.XGBRegressor`` and
    DataFrame inputs are then unavailable, which it does not use. A no-op once XGBoost is imported.
    """
    import sys

    if "xgboost" in sys.modules:
        return
    blocked = [m for m in ("sklearn", "pandas") if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # makes `import sklearn` raise ImportError inside xgboost
    try:
        xgboost_module()
    finally:
        for m in blocked:
            sys.modules.pop(m, None)
