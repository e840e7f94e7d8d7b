"""eval/: the shared prediction format, metrics against scikit-learn, aggregation, calibration."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, brier_score_loss, f1_score, log_loss

from eval.aggregate import aggregate_clips, aggregate_predictions
from eval.calibration import (
    apply_temperature,
    ensemble_spread,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    normalized_entropy,
    reliability_curve,
)
from eval.metrics import classification_metrics
from eval.predictions import PredictionFileError, prediction_rows, read_predictions, read_run, write_predictions, write_run_json

CLASSES = ["anger", "joy", "neutral"]


def _random_probs(n, k, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 2
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    probs = _random_probs(200, 3, 2)
    pred = probs.argmax(1)
    m = classification_metrics(y, pred, CLASSES, probs=probs)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["uar"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["nll"] == pytest.approx(log_loss(y, probs, labels=[0, 1, 2]))
    onehot_brier = np.mean([brier_score_loss((y == k).astype(int), probs[:, k]) for k in range(3)]) * 3
    assert m["brier"] == pytest.approx(onehot_brier)
    assert np.asarray(m["confusion"]).sum() == 200
    assert set(m["per_class"]) == set(CLASSES)


def test_metrics_exclude_other_class():
    y = np.array([0, 1, 2, 2, 0])
    pred = np.array([0, 2, 2, 1, 0])
    m = classification_metrics(y, pred, CLASSES, exclude=["neutral"])
    keep = y != 2
    assert m["n"] == 3
    assert m["macro_f1"] == pytest.approx(f1_score(y[keep], pred[keep], labels=[0, 1], average="macro", zero_division=0))
    assert "neutral" not in m["per_class"]
    with pytest.raises(ValueError, match="cannot exclude"):
        classification_metrics(y, pred, CLASSES, exclude=["Other"])


def test_ece_zero_for_perfectly_calibrated_bins_and_positive_otherwise():
    probs = np.array([[0.8, 0.2]] * 10)
    y = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, y) == pytest.approx(0.0)
    assert expected_calibration_error(probs, np.zeros(10, int)) == pytest.approx(0.2)
    curve = reliability_curve(probs, y, n_bins=10)
    assert sum(curve["count"]) == 10


def test_temperature_scaling_reduces_nll_of_overconfident_logits():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    logits = rng.normal(size=(500, 3))
    logits[np.arange(500), y] += 1.0
    logits *= 5  # overconfident
    t = fit_temperature(logits, y)
    assert t > 1.5
    assert negative_log_likelihood(apply_temperature(logits, t), y) < negative_log_likelihood(apply_temperature(logits, 1.0), y)


def test_entropy_and_ensemble_spread():
    assert normalized_entropy(np.array([[1 / 3] * 3]))[0] == pytest.approx(1.0)
    assert normalized_entropy(np.array([[1.0, 0, 0]]))[0] == pytest.approx(0.0)
    agree = np.stack([np.array([[0.9, 0.05, 0.05]])] * 4)
    disagree = np.stack([np.array([[0.9, 0.05, 0.05]]), np.array([[0.05, 0.9, 0.05]])])
    assert ensemble_spread(agree)["epistemic"][0] == pytest.approx(0.0, abs=1e-9)
    assert ensemble_spread(disagree)["epistemic"][0] > 0.2


def test_aggregate_clips_three_ways():
    clips = ["a", "a", "a", "b"]
    probs = np.array([[0.6, 0.4, 0], [0.6, 0.4, 0], [0.0, 1.0, 0], [0.2, 0.2, 0.6]])
    ids, mean = aggregate_clips(clips, probs, "mean_probs")
    assert ids == ["a", "b"] and mean[0].argmax() == 1  # 0.4 vs 0.6 mean
    _, vote = aggregate_clips(clips, probs, "vote")
    assert vote[0].argmax() == 0 and vote[0, 0] == pytest.approx(2 / 3, abs=1e-6)
    _, ml = aggregate_clips(clips, probs + 1e-3, "mean_logits")
    assert ml.shape == (2, 3) and np.allclose(ml.sum(1), 1)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate_clips(clips, probs, "max")


def test_prediction_file_round_trip_and_refusals(tmp_path):
    probs = _random_probs(4, 3)
    rows = prediction_rows(["s1", "s2", "s3", "s4"], ["anger", "joy", "joy", "neutral"], probs, CLASSES, clips=["c1", "c1", "c2", "c2"])
    path = write_predictions(tmp_path / "predictions" / "test.jsonl", rows)
    pred = read_predictions(path, CLASSES)
    assert pred.ids == ["s1", "s2", "s3", "s4"] and pred.clips == ["c1", "c1", "c2", "c2"]
    assert np.allclose(pred.probs, probs, atol=1e-5)
    with pytest.raises(ValueError, match="different gold labels"):
        aggregate_predictions(pred)  # c2 mixes joy and neutral
    bad = dict(rows[0], label="contempt")
    write_predictions(tmp_path / "bad.jsonl", [bad])
    with pytest.raises(PredictionFileError, match="not one of the classes"):
        read_predictions(tmp_path / "bad.jsonl", CLASSES)
    missing = {"id": "x", "label": "joy"}
    (tmp_path / "torn.jsonl").write_text(json.dumps(missing) + "\n")
    with pytest.raises(PredictionFileError, match="missing prediction"):
        read_predictions(tmp_path / "torn.jsonl", CLASSES)
    with pytest.raises(PredictionFileError, match="no run.json"):
        read_run(tmp_path)
    write_run_json(tmp_path, {"approach": "text", "classes": CLASSES, "metrics": {"test": {"acc": np.float32(0.5)}}})
    run = read_run(tmp_path)
    assert run.classes == CLASSES and "test" in run.splits
    assert run.info["metrics"]["test"]["acc"] == 0.5


def test_prediction_ids_from_undecodable_file_names_round_trip(tmp_path):
    import os

    sid = os.fsdecode(b"legacy\xe9name")  # a Latin-1 file name on a UTF-8 system
    rows = prediction_rows([sid], ["joy"], np.array([[0.1, 0.8, 0.1]]), CLASSES)
    pred = read_predictions(write_predictions(tmp_path / "p.jsonl", rows), CLASSES)
    assert pred.ids == [sid] and os.fsencode(pred.ids[0]) == b"legacy\xe9name"
