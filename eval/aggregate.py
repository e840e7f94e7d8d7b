"""From row (frame/window) predictions to clip predictions: majority vote, mean probabilities
or mean logits. Used by the text trainer, the feature trainer and the report alike."""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from eval.calibration import probs_to_logits
from scipy.special import softmax

AggregateMethod = Literal["vote", "mean_probs", "mean_logits"]
AGGREGATE_METHODS: tuple[str, ...] = ("vote", "mean_probs", "mean_logits")


def aggregate_clips(
    clips: Sequence[str],
    probs: np.ndarray,
    method: AggregateMethod = "mean_probs",
    logits: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """Clip ids (first-appearance order) and one probability row per clip.

    ``vote``: the share of rows predicting each class (ties go to the class with the higher mean
    probability, so the arg max is deterministic); ``mean_probs``: the mean of the rows'
    probabilities; ``mean_logits``: softmax of the mean logits (``logits``, or log-probabilities
    when only probabilities exist).
    """
    if method not in AGGREGATE_METHODS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of: {', '.join(AGGREGATE_METHODS)}")
    probs = np.asarray(probs, dtype=np.float64)
    if len(clips) != len(probs):
        raise ValueError(f"{len(clips)} clip ids but {len(probs)} probability rows")
    order: dict[str, int] = {}
    index = np.asarray([order.setdefault(str(c), len(order)) for c in clips])
    n_clips, k = len(order), probs.shape[1]
    counts = np.bincount(index, minlength=n_clips).astype(np.float64)[:, None]

    def mean_of(values: np.ndarray) -> np.ndarray:
        sums = np.zeros((n_clips, values.shape[1]))
        np.add.at(sums, index, values)
        return sums / counts

    mean_probs = mean_of(probs)
    if method == "mean_probs":
        out = mean_probs
    elif method == "mean_logits":
        out = softmax(mean_of(probs_to_logits(probs) if logits is None else np.asarray(logits, np.float64)), axis=1)
    else:
        votes = mean_of(np.eye(k)[probs.argmax(axis=1)])
        # break ties by mean probability without changing the vote shares by more than rounding
        out = votes + 1e-9 * mean_probs
        out = out / out.sum(axis=1, keepdims=True)
    return list(order), out


def clip_labels(clips: Sequence[str], labels: Sequence[str]) -> dict[str, str]:
    """The gold label of each clip; a clip whose rows disagree is an error (frame-level labels
    must be aggregated by the corpus adapter, not guessed here)."""
    out: dict[str, str] = {}
    for c, label in zip(clips, labels):
        if out.setdefault(str(c), label) != label:
            raise ValueError(f"clip {c!r} has rows with different gold labels ({out[str(c)]!r}, {label!r})")
    return out


def aggregate_predictions(pred, method: AggregateMethod = "mean_probs"):
    """A row-level :class:`eval.predictions.Predictions` -> clip-level one (ids are the clips)."""
    from eval.predictions import Predictions

    if pred.clips is None:
        raise ValueError("these predictions have no clip ids; nothing to aggregate")
    if pred.probs is None:
        if method != "vote":
            raise ValueError(f"--aggregate {method} needs probabilities; the file has only labels (use vote)")
        index = {c: i for i, c in enumerate(pred.classes)}
        probs = np.eye(len(pred.classes))[[index[p] for p in pred.predictions]]
    else:
        probs = pred.probs
    logits = None
    if pred.extra and all("logits" in e for e in pred.extra):
        logits = np.asarray([e["logits"] for e in pred.extra], dtype=np.float64)
    ids, clip_probs = aggregate_clips(pred.clips, probs, method, logits=logits)
    gold = clip_labels(pred.clips, pred.labels)
    return Predictions(
        ids=ids,
        labels=[gold[c] for c in ids],
        predictions=[pred.classes[int(k)] for k in clip_probs.argmax(axis=1)],
        classes=list(pred.classes),
        probs=clip_probs,
        clips=None,
    )
