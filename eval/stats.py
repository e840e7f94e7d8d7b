"""Uncertainty of the headline numbers: bootstrap confidence intervals and paired tests.

* :func:`bootstrap_metrics`: seeded percentile bootstrap 95 % intervals of accuracy, macro and
  weighted F1, UAR (and NLL, Brier when probabilities exist). When rows are parts of clips the
  resampling unit is the clip (a cluster bootstrap): frames of one clip are not independent.
* :func:`mcnemar_test`: McNemar's test on the paired correct/wrong table of two runs over the
  same samples (statsmodels; exact binomial when fewer than 25 discordant pairs).
* :func:`paired_bootstrap`: the bootstrap distribution of the difference in a metric between two
  runs under the *same* resamples: its interval and a two-sided p-value.

Every resample's metrics come from its confusion matrix (:func:`metrics_from_confusion`), so a
thousand resamples cost one matrix product; the tests check these equal scikit-learn's numbers
(``eval.metrics.classification_metrics``) on the same samples.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

CI_METRICS = ("accuracy", "weighted_f1", "macro_f1", "uar")
PROB_CI_METRICS = ("nll", "brier")
DEFAULT_RESAMPLES = 2000
EPS = 1e-12


def metrics_from_confusion(cm: np.ndarray, labels: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Accuracy, macro/weighted F1 and UAR from confusion matrices ``(..., K, K)`` (rows = gold).

    ``labels``: the class indices averaged over (others excluded, as ``classification_metrics``'s
    ``exclude`` does: their gold rows are dropped; predicting them stays an error). Same
    conventions as ``classification_metrics``: macro F1 averages over the classes present in gold
    or predictions, UAR over the classes present in gold (scikit-learn, ``zero_division=0``).
    """
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[-1]
    labels = np.arange(k) if labels is None else np.asarray(labels, dtype=np.int64)
    kept = cm[..., labels, :]  # gold rows of the kept classes, all predicted columns
    n = kept.sum(axis=(-1, -2))
    tp = np.diagonal(cm, axis1=-2, axis2=-1)[..., labels]
    support = kept.sum(axis=-1)
    predicted = kept.sum(axis=-2)[..., labels]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        accuracy = np.where(n > 0, tp.sum(axis=-1) / n, np.nan)
        weighted = np.where(n > 0, (f1 * support).sum(axis=-1) / n, np.nan)
    seen_gold = support > 0
    seen = seen_gold | (predicted > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        macro_f1 = np.where(seen.any(axis=-1), (f1 * seen).sum(axis=-1) / seen.sum(axis=-1), np.nan)
        uar = np.where(seen_gold.any(axis=-1), (recall * seen_gold).sum(axis=-1) / seen_gold.sum(axis=-1), np.nan)
    return {"accuracy": accuracy, "weighted_f1": weighted, "macro_f1": macro_f1, "uar": uar}


def _resample_counts(n_units: int, n_resamples: int, seed: int, max_cells: int = 4_000_000):
    """Chunks of ``(b, n_units)`` arrays: how often each unit is drawn in each resample (with
    replacement), in bounded memory; the same seed gives the same resamples."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, max_cells // max(n_units, 1)))
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        draws = rng.integers(0, n_units, size=(b, n_units)) + (np.arange(b) * n_units)[:, None]
        yield np.bincount(draws.ravel(), minlength=b * n_units).reshape(b, n_units).astype(np.float64)
        done += b


def _units(n: int, groups: Sequence[str] | None) -> tuple[np.ndarray, int]:
    """Index of each row's resampling unit (its clip, or itself) and the number of units."""
    if groups is None:
        return np.arange(n), n
    index: dict[str, int] = {}
    unit = np.asarray([index.setdefault(str(g), len(index)) for g in groups])
    return unit, len(index)


def _unit_confusions(y_true, y_pred, k: int, unit: np.ndarray, n_units: int) -> np.ndarray:
    """``(n_units, K*K)``: each unit's confusion counts, flattened."""
    out = np.zeros((n_units, k * k))
    np.add.at(out, (unit, np.asarray(y_true) * k + np.asarray(y_pred)), 1.0)
    return out


def _per_sample_scores(probs: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(y)), y] = 1.0
    return {
        "nll": -np.log(np.clip(probs[np.arange(len(y)), y], EPS, 1.0)),
        "brier": np.sum((probs - onehot) ** 2, axis=1),
    }


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


def bootstrap_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    n_classes: int,
    probs: np.ndarray | None = None,
    groups: Sequence[str] | None = None,
    labels: Sequence[int] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals: ``{metric: {"low", "high"}}`` (point values come from
    ``eval.metrics``). ``groups``: clip id per row, resampled as units; ``labels``: the classes
    averaged over (rows whose gold class is not among them are dropped first)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if labels is not None:
        keep = np.isin(y_true, labels)
        y_true, y_pred = y_true[keep], y_pred[keep]
        probs = None if probs is None else np.asarray(probs)[keep]
        groups = None if groups is None else [g for g, k in zip(groups, keep) if k]
    if len(y_true) == 0:
        return {}
    unit, n_units = _units(len(y_true), groups)
    unit_cm = _unit_confusions(y_true, y_pred, n_classes, unit, n_units)
    rows_per_unit = np.bincount(unit, minlength=n_units).astype(np.float64)
    scores = {} if probs is None else {
        name: np.bincount(unit, weights=v, minlength=n_units)
        for name, v in _per_sample_scores(np.asarray(probs, dtype=np.float64), y_true).items()
    }
    boot: dict[str, list[np.ndarray]] = {m: [] for m in (*CI_METRICS, *scores)}
    for counts in _resample_counts(n_units, n_resamples, seed):
        cms = (counts @ unit_cm).reshape(-1, n_classes, n_classes)
        for m, v in metrics_from_confusion(cms, labels).items():
            boot[m].append(v)
        n_rows = counts @ rows_per_unit
        for name, sums in scores.items():
            boot[name].append((counts @ sums) / n_rows)
    out = {m: dict(zip(("low", "high"), _interval(np.concatenate(v), level))) for m, v in boot.items()}
    out["_meta"] = {"n_resamples": n_resamples, "level": level, "seed": seed,
                    "unit": "clip" if groups is not None else "sample", "n_units": n_units}
    return out


def mcnemar_test(correct_a: Sequence[bool], correct_b: Sequence[bool], exact: bool | None = None) -> dict[str, Any]:
    """McNemar's test of equal error rates on the same samples (statsmodels).

    ``exact=None`` uses the exact binomial test when fewer than 25 samples are discordant (the
    chi-square approximation is poor there), else the chi-square statistic with continuity
    correction. Returns the 2×2 table, the discordant counts ``a_only`` (A right, B wrong) and
    ``b_only``, the statistic and the p-value.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same samples: {len(a)} vs {len(b)}")
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    discordant = int(table[0, 1] + table[1, 0])
    use_exact = discordant < 25 if exact is None else exact
    if discordant == 0:
        result = {"statistic": 0.0, "pvalue": 1.0}
    else:
        r = mcnemar(table, exact=use_exact, correction=True)
        result = {"statistic": float(r.statistic), "pvalue": float(r.pvalue)}
    return {
        "test": "mcnemar",
        "exact": bool(use_exact),
        "table": table.tolist(),
        "a_only": int(table[0, 1]),
        "b_only": int(table[1, 0]),
        "n": int(len(a)),
        **result,
    }


def paired_bootstrap(
    y_true: Sequence[int],
    pred_a: Sequence[int],
    pred_b: Sequence[int],
    n_classes: int,
    metrics: Sequence[str] = ("weighted_f1", "macro_f1"),
    groups: Sequence[str] | None = None,
    labels: Sequence[int] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Difference A − B of each metric: observed value, percentile interval over paired resamples
    (the same samples drawn for both runs) and a two-sided bootstrap p-value: twice the share of
    resampled differences on the far side of zero, as (count + 1) / (B + 1) so it is never 0."""
    y_true = np.asarray(y_true, dtype=np.int64)
    pa = np.asarray(pred_a, dtype=np.int64)
    pb = np.asarray(pred_b, dtype=np.int64)
    if not (len(y_true) == len(pa) == len(pb)):
        raise ValueError("paired bootstrap needs both runs' predictions on the same samples")
    if labels is not None:
        keep = np.isin(y_true, labels)
        y_true, pa, pb = y_true[keep], pa[keep], pb[keep]
        groups = None if groups is None else [g for g, k in zip(groups, keep) if k]
    unit, n_units = _units(len(y_true), groups)
    k = n_classes
    cm_units_a = _unit_confusions(y_true, pa, k, unit, n_units)
    cm_units_b = _unit_confusions(y_true, pb, k, unit, n_units)
    diffs: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for counts in _resample_counts(n_units, n_resamples, seed):
        boot_a = metrics_from_confusion((counts @ cm_units_a).reshape(-1, k, k), labels)
        boot_b = metrics_from_confusion((counts @ cm_units_b).reshape(-1, k, k), labels)
        for m in metrics:
            diffs[m].append(boot_a[m] - boot_b[m])
    obs_a = metrics_from_confusion(_unit_confusions(y_true, pa, k, np.zeros(len(y_true), int), 1).reshape(k, k), labels)
    obs_b = metrics_from_confusion(_unit_confusions(y_true, pb, k, np.zeros(len(y_true), int), 1).reshape(k, k), labels)
    out: dict[str, dict[str, float]] = {}
    for m in metrics:
        diff = np.concatenate(diffs[m])
        diff = diff[np.isfinite(diff)]
        lo, hi = _interval(diff, level)
        far = min(np.sum(diff <= 0), np.sum(diff >= 0))
        p = float(min(1.0, 2 * (far + 1) / (len(diff) + 1))) if len(diff) else float("nan")
        out[m] = {"difference": float(obs_a[m] - obs_b[m]), "low": lo, "high": hi, "pvalue": p}
    out["_meta"] = {"n_resamples": n_resamples, "level": level, "seed": seed,
                    "unit": "clip" if groups is not None else "sample", "n_units": n_units}
    return out
