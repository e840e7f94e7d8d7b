"""Classification metrics as pure functions of label indices (scikit-learn underneath).

``classification_metrics`` is what every trainer logs and every report prints; both read it from
here, so no number is computed two ways. Probabilistic scores (ECE, NLL, Brier) come from
``eval.calibration``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, recall_score

from eval.calibration import brier_score, expected_calibration_error, negative_log_likelihood

SELECTION_METRICS = ("weighted_f1", "macro_f1", "accuracy", "uar")


def unweighted_average_recall(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int] | None = None) -> float:
    """UAR: the mean of per-class recalls (the speech-emotion community's headline metric)."""
    return float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def weighted_f1_score(y_true, y_pred, labels=None) -> float:
    return float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0))


def macro_f1_score(y_true, y_pred, labels=None) -> float:
    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    classes: Sequence[str],
    probs: np.ndarray | None = None,
    exclude: Sequence[str] = (),
) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, UAR, per-class P/R/F1, confusion matrices (+ ECE, NLL, Brier).

    ``exclude``: class names left out of the averages (e.g. "Other" in C-EXPR-DB): rows whose
    gold label is excluded are dropped, and the averages run over the remaining classes; a
    prediction of an excluded class stays an error. Confusion matrices are over all classes.

    Macro F1 averages over the classes that occur in the gold labels or the predictions
    (scikit-learn's default label set), UAR over the classes that occur in the gold labels
    (``balanced_accuracy_score``): a class absent from a small split is not counted as a zero.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} gold labels but {len(y_pred)} predictions")
    classes = list(classes)
    unknown = [c for c in exclude if c not in classes]
    if unknown:
        raise ValueError(f"cannot exclude {unknown}: not among the classes {classes}")
    labels = [i for i, c in enumerate(classes) if c not in set(exclude)]
    keep = np.isin(y_true, labels)
    yt, yp = y_true[keep], y_pred[keep]
    out: dict[str, Any] = {"n": int(keep.sum())}
    if out["n"] == 0:
        return out
    out["accuracy"] = float(accuracy_score(yt, yp))
    seen_gold = set(yt.tolist())
    seen = seen_gold | set(yp.tolist())
    out["macro_f1"] = macro_f1_score(yt, yp, [k for k in labels if k in seen])
    out["weighted_f1"] = weighted_f1_score(yt, yp, labels)
    out["uar"] = unweighted_average_recall(yt, yp, [k for k in labels if k in seen_gold])
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
    out["per_class"] = {
        classes[k]: {"precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]), "support": int(s[j])}
        for j, k in enumerate(labels)
    }
    all_labels = list(range(len(classes)))
    cm = confusion_matrix(y_true, y_pred, labels=all_labels)
    out["confusion"] = cm.tolist()
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = cm / cm.sum(axis=1, keepdims=True)
    out["confusion_normalized"] = np.nan_to_num(norm).round(6).tolist()
    if probs is not None:
        pr = np.asarray(probs, dtype=np.float64)[keep]
        out["ece"] = expected_calibration_error(pr, yt)
        out["nll"] = negative_log_likelihood(pr, yt)
        out["brier"] = brier_score(pr, yt)
    return out


def summary(metrics: dict[str, Any], keys: Sequence[str] = ("accuracy", "weighted_f1", "macro_f1", "uar", "ece", "nll")) -> dict[str, float]:
    """The scalar part of :func:`classification_metrics` (for logs and tables)."""
    return {k: metrics[k] for k in keys if k in metrics}


# ---------------------------------------------------------------- levels and the "Other" class

OTHER_CLASS_NAMES = ("other",)
LEVELS = ("rows", "clips")


def other_class(classes: Sequence[str]) -> str | None:
    """The catch-all class of the corpus ("Other" in C-EXPR-DB), matched case-insensitively."""
    for c in classes:
        if str(c).strip().lower() in OTHER_CLASS_NAMES:
            return c
    return None


def class_variants(classes: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``{"all": (), "without_other": ("Other",)}`` — the excluded classes of each variant; the
    second only when the class list has an "Other" class."""
    other = other_class(classes)
    return {"all": ()} if other is None else {"all": (), "without_other": (other,)}


def level_predictions(pred, level: str, aggregate: str = "mean_probs"):
    """The predictions at ``level``: ``rows`` as read; ``clips`` aggregated per clip (rows that
    carry no clip id already are clips, and are returned as they are)."""
    from eval.aggregate import aggregate_predictions

    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if level == "rows" or pred.clips is None:
        return pred
    return aggregate_predictions(pred, aggregate)


def evaluate_predictions(pred, levels: Sequence[str] = LEVELS, aggregate: str = "mean_probs") -> dict[str, Any]:
    """:func:`classification_metrics` of one prediction file at each level and class variant:
    ``{level: {"all": {...}, "without_other": {...}}}``; ``clips`` equals ``rows`` when the rows
    are whole clips (``"same_as_rows": True`` says so)."""
    out: dict[str, Any] = {}
    for level in levels:
        p = level_predictions(pred, level, aggregate)
        out[level] = {
            variant: classification_metrics(p.y_true, p.y_pred, p.classes, probs=p.probs, exclude=excluded)
            for variant, excluded in class_variants(p.classes).items()
        }
        if level == "clips":
            out[level]["same_as_rows"] = pred.clips is None
            out[level]["aggregate"] = None if pred.clips is None else aggregate
    return out
