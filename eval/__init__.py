"""Evaluation: the shared prediction format, metrics, clip aggregation, calibration, reports.

Both approaches (``llm/finetune.py`` and ``baselines/feature_fusion/train.py``) write predictions
and compute metrics through this package only, so text and feature numbers are comparable.
"""
from eval.aggregate import AGGREGATE_METHODS, aggregate_clips, aggregate_predictions
from eval.calibration import (
    apply_temperature,
    brier_score,
    ensemble_spread,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    normalized_entropy,
    reliability_curve,
)
from eval.metrics import classification_metrics, unweighted_average_recall
from eval.predictions import (
    Predictions,
    PredictionFileError,
    dataset_provenance,
    prediction_rows,
    read_predictions,
    read_run,
    write_predictions,
    write_run_json,
)

__all__ = [
    "AGGREGATE_METHODS", "aggregate_clips", "aggregate_predictions", "apply_temperature", "brier_score",
    "ensemble_spread", "expected_calibration_error", "fit_temperature", "negative_log_likelihood",
    "normalized_entropy", "reliability_curve", "classification_metrics", "unweighted_average_recall",
    "Predictions", "PredictionFileError", "dataset_provenance", "prediction_rows", "read_predictions",
    "read_run", "write_predictions", "write_run_json",
]
