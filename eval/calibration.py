"""Uncertainty and calibration for any prediction file: ECE, NLL, Brier, normalised entropy,
ensemble spread, temperature scaling fitted on validation, reliability curves.

Pure functions of probability matrices ``(n, classes)`` and integer labels ``(n,)``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

EPS = 1e-12


def _check(probs: np.ndarray, y: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(y):
        raise ValueError(f"probs must be (n, classes) with n = {len(y)} labels; got {probs.shape}")
    return probs, y


def negative_log_likelihood(probs: np.ndarray, y: Sequence[int]) -> float:
    """Mean −log p(gold) (nats)."""
    probs, y = _check(probs, y)
    if len(y) == 0:
        return float("nan")
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], EPS, 1.0))))


def brier_score(probs: np.ndarray, y: Sequence[int]) -> float:
    """Multi-class Brier score: mean over samples of the squared distance to the one-hot gold."""
    probs, y = _check(probs, y)
    if len(y) == 0:
        return float("nan")
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def reliability_curve(probs: np.ndarray, y: Sequence[int], n_bins: int = 15) -> dict[str, list[float]]:
    """Per equal-width confidence bin: mean confidence, accuracy and count (top-label)."""
    probs, y = _check(probs, y)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / counts
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / counts
    return {
        "edges": edges.tolist(),
        "confidence": np.nan_to_num(mean_conf, nan=0.0).tolist(),
        "accuracy": np.nan_to_num(accuracy, nan=0.0).tolist(),
        "count": counts.astype(int).tolist(),
    }


def expected_calibration_error(probs: np.ndarray, y: Sequence[int], n_bins: int = 15) -> float:
    """Top-label ECE with equal-width bins (Guo et al. 2017): sum_b |B|/n · |acc(B) − conf(B)|."""
    curve = reliability_curve(probs, y, n_bins)
    counts = np.asarray(curve["count"], dtype=np.float64)
    if counts.sum() == 0:
        return float("nan")
    gap = np.abs(np.asarray(curve["accuracy"]) - np.asarray(curve["confidence"]))
    return float(np.sum(counts / counts.sum() * gap))


def normalized_entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy divided by log(classes): 0 = certain, 1 = uniform (EMENet's aleatoric score)."""
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[-1]
    if k < 2:
        return np.zeros(probs.shape[:-1])
    h = -np.sum(probs * np.log(np.clip(probs, EPS, 1.0)), axis=-1)
    return h / np.log(k)


def ensemble_spread(member_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Deep-ensemble uncertainty from ``(members, n, classes)`` probabilities.

    ``mean``: the ensemble's probabilities; ``total``: normalised entropy of the mean;
    ``aleatoric``: mean of the members' normalised entropies; ``epistemic``: their difference
    (normalised mutual information); ``std``: per-sample SD of the members' probability of the
    ensemble's predicted class.
    """
    m = np.asarray(member_probs, dtype=np.float64)
    if m.ndim != 3:
        raise ValueError(f"member probabilities must be (members, n, classes); got {m.shape}")
    mean = m.mean(axis=0)
    total = normalized_entropy(mean)
    aleatoric = normalized_entropy(m).mean(axis=0)
    top = mean.argmax(axis=1)
    std = m[:, np.arange(m.shape[1]), top].std(axis=0)
    return {"mean": mean, "total": total, "aleatoric": aleatoric, "epistemic": np.clip(total - aleatoric, 0.0, None), "std": std}


def fit_temperature(logits: np.ndarray, y: Sequence[int], bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature T minimising validation NLL of softmax(logits / T) (Guo et al. 2017).

    Probability-only predictions can pass ``np.log(probs)`` as logits.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        raise ValueError("temperature scaling needs at least one validation sample")

    def nll(log_t: float) -> float:
        lp = log_softmax(logits / np.exp(log_t), axis=1)
        return float(-lp[np.arange(len(y)), y].mean())

    res = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return float(np.exp(res.x))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def probs_to_logits(probs: np.ndarray) -> np.ndarray:
    """Log-probabilities (logits up to a constant) for files that store only probabilities."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0))
