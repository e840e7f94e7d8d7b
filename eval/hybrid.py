"""Hybrid: late fusion of a text run and a feature run by probability averaging.

``p = w · p_text + (1 − w) · p_feature`` per sample, with ``w`` chosen on the *validation*
predictions of both runs (a grid, 0 to 1 in steps of 0.05 by default, scored by weighted F1 —
the selection metric of both trainers; ties go to the weight nearest 0.5, i.e. the least
one-sided fusion). The test split never influences ``w``. ``w = 1`` is the text run alone and
``w = 0`` the feature run alone, so on validation the hybrid is never worse than either.

:func:`write_hybrid_run` writes the result as a run folder in the shared format (approach
``hybrid``), so ``eval compare`` and every other reader treat it like a trained run;
``eval compare`` also adds it as an extra row on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.metrics import SELECTION_METRICS, macro_f1_score, unweighted_average_recall, weighted_f1_score
from eval.predictions import PredictionFileError, Predictions, read_run

SELECTION_SCORES = {
    "weighted_f1": weighted_f1_score,
    "macro_f1": macro_f1_score,
    "accuracy": lambda y, p, labels=None: float(np.mean(np.asarray(y) == np.asarray(p))),
    "uar": unweighted_average_recall,
}
DEFAULT_GRID = tuple(round(float(w), 2) for w in np.linspace(0.0, 1.0, 21))


class HybridError(PredictionFileError):
    """Two runs that cannot be fused (says why)."""


@dataclass
class HybridChoice:
    weight: float
    metric: str
    scores: dict[float, float] = field(default_factory=dict)  # validation score per weight
    n_validation: int = 0


def align(text: Predictions, feature: Predictions, what: str = "",
          names: tuple[str, str] = ("text", "feature")) -> tuple[Predictions, Predictions]:
    """Both runs' rows in the first run's id order, classes in its order; errors say which ids or
    classes differ (``names``: what the two runs are called in them)."""
    where = f" ({what})" if what else ""
    a, b = names
    if text.probs is None or feature.probs is None:
        missing = [name for name, p in ((a, text), (b, feature)) if p.probs is None]
        raise HybridError(f"late fusion needs probabilities; the {' and '.join(missing)} run's file{where} has none")
    if set(text.classes) != set(feature.classes):
        raise HybridError(f"class lists differ{where}: {a} {text.classes} vs {b} {feature.classes}")
    missing = [i for i in text.ids if i not in set(feature.ids)]
    extra = [i for i in feature.ids if i not in set(text.ids)]
    if missing or extra:
        raise HybridError(
            f"ids differ{where}: {len(missing)} {a} ids missing from the {b} run (e.g. {missing[:3]}), "
            f"{len(extra)} {b} ids not in the {a} run (e.g. {extra[:3]})"
        )
    f = feature.subset(text.ids)
    if f.classes != text.classes:
        order = [f.classes.index(c) for c in text.classes]
        f = Predictions(f.ids, f.labels, f.predictions, list(text.classes), f.probs[:, order], f.clips, f.extra)
    bad = [i for i, a, b in zip(text.ids, text.labels, f.labels) if a != b]
    if bad:
        raise HybridError(f"gold labels differ{where} for {len(bad)} ids (e.g. {bad[:3]})")
    return text, f


def fuse(text: Predictions, feature: Predictions, weight: float) -> Predictions:
    """The fused predictions (rows aligned first); clip ids from the text run, else the feature run."""
    t, f = align(text, feature)
    probs = weight * t.probs + (1.0 - weight) * f.probs
    probs = probs / probs.sum(axis=1, keepdims=True)
    return Predictions(
        ids=list(t.ids), labels=list(t.labels), predictions=[t.classes[k] for k in probs.argmax(axis=1)],
        classes=list(t.classes), probs=probs, clips=t.clips if t.clips is not None else f.clips,
    )


def choose_weight(
    text_val: Predictions, feature_val: Predictions, grid: Sequence[float] = DEFAULT_GRID, metric: str = "weighted_f1"
) -> HybridChoice:
    """The weight of the text run that maximises ``metric`` on validation (ties: nearest 0.5)."""
    if metric not in SELECTION_METRICS:
        raise ValueError(f"metric must be one of {SELECTION_METRICS}, got {metric!r}")
    if not grid or any(not 0.0 <= w <= 1.0 for w in grid):
        raise ValueError(f"weights must lie in [0, 1]; got {list(grid)}")
    t, f = align(text_val, feature_val, "validation")
    score = SELECTION_SCORES[metric]
    labels = list(range(len(t.classes)))
    scores: dict[float, float] = {}
    for w in grid:
        fused = fuse(t, f, float(w))
        scores[float(w)] = score(fused.y_true, fused.y_pred, labels)
    best = max(scores.values())
    weight = min((w for w, s in scores.items() if s >= best - 1e-12), key=lambda w: (abs(w - 0.5), w))
    return HybridChoice(weight=weight, metric=metric, scores=scores, n_validation=len(t))


def write_hybrid_run(
    text_run: str | Path,
    feature_run: str | Path,
    out: str | Path,
    grid: Sequence[float] = DEFAULT_GRID,
    metric: str = "weighted_f1",
    aggregate: str = "mean_probs",
    validation_split: str = "validation",
) -> Path:
    """Fuse two run folders into ``out`` (predictions of every split both have, run.json with
    approach ``hybrid``, the chosen weight and its validation scores)."""
    from eval.predictions import write_run_json
    from textualize.training import write_split_predictions

    t_run, f_run = read_run(text_run), read_run(feature_run)
    for run, role in ((t_run, "text"), (f_run, "feature")):
        if validation_split not in run.splits:
            raise HybridError(
                f"{role} run {run.path} has no {validation_split!r} predictions (has: {sorted(run.splits) or 'none'}); "
                "the fusion weight is chosen on validation"
            )
    choice = choose_weight(t_run.predictions(validation_split), f_run.predictions(validation_split), grid, metric)
    splits = [s for s in t_run.splits if s in f_run.splits and not s.endswith(".clip")]
    metrics: dict[str, Any] = {}
    for split in splits:
        fused = fuse(t_run.predictions(split), f_run.predictions(split), choice.weight)
        metrics[split] = write_split_predictions(
            out, split, fused.ids, fused.labels, fused.probs, fused.classes, clips=fused.clips, aggregate=aggregate,
        )
    t_info, f_info = t_run.info, f_run.info
    write_run_json(out, {
        "approach": "hybrid",
        "model": f"{t_info.get('model')} + {f_info.get('model')}",
        "method": "late-fusion (probability averaging)",
        "dataset": t_info.get("dataset"),
        "classes": t_run.classes,
        "seed": None,
        "metrics": metrics,
        "config": {
            "text_run": str(t_run.path), "feature_run": str(f_run.path), "text_weight": choice.weight,
            "selection_metric": metric, "grid": list(grid), "validation_scores": choice.scores,
            "n_validation": choice.n_validation, "aggregate": aggregate,
        },
        "sources": {
            "text": {k: t_info.get(k) for k in ("approach", "model", "method", "dataset", "git_commit", "date")},
            "feature": {k: f_info.get(k) for k in ("approach", "model", "method", "dataset", "git_commit", "date")},
        },
        "timings": {},
    })
    return Path(out)
