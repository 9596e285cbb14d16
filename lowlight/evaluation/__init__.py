"""Evaluation: one scorer, the baselines beside the model, and how results are shown.

``scores`` holds the uint8 PSNR / SSIM / GT-mean metrics and the per-image scoring,
``baselines`` the classical methods (histogram equalisation, CLAHE, gamma),
``report`` the Markdown tables, ``periodic`` the grid-artefact index.
"""
