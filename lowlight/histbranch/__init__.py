"""The histogram branch: from a dark image to a mapped image with predicted brightness.

``histogram`` holds percentiles and luma, ``eda`` the low/high percentile study,
``quantile_features`` and ``quantiles`` the XGBoost model that predicts the well-lit
image's percentiles, ``quantile_file`` the checked reader of its saved booster, and
``histmap`` the mapping of the dark image onto the predicted histogram.
"""
