"""``eval compare``: text, feature and hybrid runs side by side on the same samples.

:func:`load_runs` reads the runs and refuses, with a message that lists every difference, runs
that are not comparable: a missing run.json or split, other sample ids (missing/extra, with
examples), other class lists, other gold labels. Runs whose datasets have different manifest
hashes are compared with a **warning** (an error with ``strict=True``): a modality ablation or a
template comparison builds one dataset per variant, with the same ids and labels but different
manifests — exactly what the report is for — while the ids/labels check already guarantees the
samples are the same.

:func:`compare` computes everything the report shows (``metrics.json`` is its output as is):
metrics at row and clip level, with and without "Other", bootstrap 95 % intervals, paired tests
(McNemar, paired bootstrap of the F1 difference) for every pair of runs of different approaches,
the late-fusion hybrid of every text × feature pair that has validation predictions, a
modality-ablation table, the samples where text and feature runs disagree (with their prompts),
and provenance.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.metrics import LEVELS, class_variants, classification_metrics, level_predictions
from eval.predictions import PredictionFileError, Predictions, Run, git_commit, read_predictions, read_run
from eval.stats import DEFAULT_RESAMPLES, bootstrap_metrics, mcnemar_test, paired_bootstrap

LEVEL_CHOICES = ("rows", "clips", "both")
EXAMPLES = 5


class ComparisonError(PredictionFileError):
    """Runs that cannot be compared; the message lists what differs."""


@dataclass
class RunEntry:
    """One row of the comparison: a run folder, or a hybrid computed on the fly."""

    name: str
    approach: str
    info: dict[str, Any]
    path: Path | None
    pred: Predictions  # the compared split, classes in the reference order
    validation: Predictions | None = None
    hybrid_of: tuple[str, str] | None = None

    @property
    def label(self) -> str:
        model = self.info.get("model") or "?"
        method = self.info.get("method")
        return f"{self.approach}: {model}{', ' + method if method and self.approach != 'hybrid' else ''}"


@dataclass
class Comparison:
    runs: list[RunEntry]
    split: str
    classes: list[str]
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- loading and refusing


def _examples(items: Sequence[str]) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:EXAMPLES])
    return shown + (f", … ({len(items)} in all)" if len(items) > EXAMPLES else "")


def _unique_names(runs: Sequence[Run]) -> list[str]:
    names: list[str] = []
    for run in runs:
        base = run.name
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _read_split(run: Run, split: str, classes: Sequence[str]) -> Predictions:
    return read_predictions(run.splits[split], classes)


def load_runs(run_dirs: Sequence[str | Path], split: str = "test", strict: bool = False) -> Comparison:
    """Read the runs and check they are comparable; :class:`ComparisonError` lists all problems."""
    if not run_dirs:
        raise ComparisonError("no runs given")
    problems: list[str] = []
    runs: list[Run] = []
    for d in run_dirs:
        d = Path(d)
        if not d.is_dir():
            problems.append(f"{d}: no such run folder")
            continue
        try:
            runs.append(read_run(d))
        except (PredictionFileError, ValueError) as e:
            problems.append(str(e))
    if problems:
        raise ComparisonError("cannot compare:\n  " + "\n  ".join(problems))
    for run in runs:
        if split not in run.splits:
            problems.append(f"{run.path}: no predictions for split {split!r} (has: {', '.join(sorted(run.splits)) or 'none'})")
    ref_run = runs[0]
    classes = ref_run.classes
    for run in runs[1:]:
        if set(run.classes) != set(classes):
            only_ref = [c for c in classes if c not in run.classes]
            only_run = [c for c in run.classes if c not in classes]
            problems.append(
                f"class lists differ: {run.path} has {run.classes}, {ref_run.path} has {classes}"
                + (f"; missing in {run.path.name}: {only_ref}" if only_ref else "")
                + (f"; extra in {run.path.name}: {only_run}" if only_run else "")
            )
    if problems:
        raise ComparisonError("cannot compare:\n  " + "\n  ".join(problems))

    preds: list[Predictions] = []
    for run in runs:
        try:
            preds.append(_read_split(run, split, classes))
        except PredictionFileError as e:
            problems.append(str(e))
    if problems:
        raise ComparisonError("cannot compare:\n  " + "\n  ".join(problems))

    ref = preds[0]
    ref_ids = set(ref.ids)
    ref_gold = dict(zip(ref.ids, ref.labels))
    for run, p in zip(runs[1:], preds[1:]):
        ids = set(p.ids)
        missing = [i for i in ref.ids if i not in ids]
        extra = [i for i in p.ids if i not in ref_ids]
        if missing or extra:
            parts = [f"{split} ids differ between {ref_run.path} ({len(ref.ids)} rows) and {run.path} ({len(p.ids)} rows):"]
            if missing:
                parts.append(f"{len(missing)} missing from {run.path.name} (e.g. {_examples(missing)})")
            if extra:
                parts.append(f"{len(extra)} extra in {run.path.name} (e.g. {_examples(extra)})")
            problems.append(" ".join(parts))
            continue
        wrong = [i for i, lab in zip(p.ids, p.labels) if ref_gold[i] != lab]
        if wrong:
            problems.append(
                f"gold labels differ between {ref_run.path} and {run.path} for {len(wrong)} ids: "
                + ", ".join(f"{i!r} ({ref_gold[i]} vs {lab})" for i, lab in zip(p.ids, p.labels) if i in wrong[:EXAMPLES])
            )
    if problems:
        raise ComparisonError("cannot compare:\n  " + "\n  ".join(problems))
    clip_of = _clip_map(runs, preds)  # raises when runs put a sample in different clips

    warnings: list[str] = []
    hashes = {str(r.path): (r.info.get("dataset") or {}).get("manifest_sha256") for r in runs}
    if len(set(hashes.values())) > 1:
        msg = ("the runs' datasets have different manifests (same ids and labels): "
               + "; ".join(f"{p}: {str(h)[:12] if h else 'no hash'}" for p, h in hashes.items()))
        if strict:
            raise ComparisonError("cannot compare (strict): " + msg)
        warnings.append(msg + ". Expected for modality or template ablations; otherwise check that the runs used the same build.")
    n_test = len(ref.ids)
    if n_test < 50:
        warnings.append(f"only {n_test} {split} samples: confidence intervals are wide and the tests have little power.")

    names = _unique_names(runs)
    entries = []
    for name, run in zip(names, runs):
        val = None
        if "validation" in run.splits and split != "validation":
            try:
                val = _read_split(run, "validation", classes)
            except PredictionFileError as e:
                warnings.append(f"{run.path}: validation predictions unreadable ({e}); no hybrid with it")
        pred = _with_clips(_read_split(run, split, classes).subset(ref.ids), clip_of)
        entries.append(RunEntry(name=name, approach=str(run.info.get("approach", "?")), info=run.info, path=run.path,
                                pred=pred, validation=val))
    return Comparison(runs=entries, split=split, classes=list(classes), warnings=warnings)


def _clip_map(runs: Sequence[Run], preds: Sequence[Predictions]) -> dict[str, str] | None:
    """Which clip each sample belongs to, from every run that says so (a fact of the dataset, so
    runs that do not name clips get it from those that do). ``None`` when no run names clips or
    every clip is a single row (rows are whole clips). Runs that disagree are refused."""
    clip_of: dict[str, str] = {}
    source: dict[str, Path] = {}
    problems = []
    for run, p in zip(runs, preds):
        if p.clips is None:
            continue
        other = [i for i, c in zip(p.ids, p.clips) if clip_of.setdefault(i, c) != c]
        source.setdefault("first", run.path)
        if other:
            problems.append(f"clip ids differ between {source['first']} and {run.path} for {len(other)} rows "
                            f"(e.g. {_examples(other)})")
    if problems:
        raise ComparisonError("cannot compare:\n  " + "\n  ".join(problems))
    if not clip_of or len(set(clip_of.values())) == len(clip_of):
        return None
    return clip_of


def _with_clips(pred: Predictions, clip_of: dict[str, str] | None) -> Predictions:
    missing = [] if clip_of is None else [i for i in pred.ids if i not in clip_of]
    if missing:
        raise ComparisonError(f"no clip id known for {len(missing)} rows (e.g. {_examples(missing)})")
    clips = None if clip_of is None else [clip_of[i] for i in pred.ids]
    return Predictions(pred.ids, pred.labels, pred.predictions, pred.classes, pred.probs, clips, pred.extra)


# ---------------------------------------------------------------- hybrids


def add_hybrids(comp: Comparison, metric: str = "weighted_f1") -> list[dict[str, Any]]:
    """A late-fusion row for every text × feature pair with validation predictions (appended to
    ``comp.runs``); returns what was fused and with which weight, or why not."""
    from eval.hybrid import HybridError, choose_weight, fuse

    notes = []
    texts = [r for r in comp.runs if r.approach == "text"]
    feats = [r for r in comp.runs if r.approach == "feature"]
    for t, f in itertools.product(texts, feats):
        note: dict[str, Any] = {"text": t.name, "feature": f.name}
        if t.validation is None or f.validation is None:
            note["skipped"] = "no validation predictions in " + " and ".join(r.name for r in (t, f) if r.validation is None)
            notes.append(note)
            continue
        try:
            choice = choose_weight(t.validation, f.validation, metric=metric)
            fused = fuse(t.pred, f.pred, choice.weight)
        except HybridError as e:
            note["skipped"] = str(e)
            notes.append(note)
            continue
        name = f"hybrid({t.name}+{f.name})"
        info = {"approach": "hybrid", "model": f"{t.info.get('model')} + {f.info.get('model')}",
                "method": "late fusion", "dataset": t.info.get("dataset"),
                "config": {"text_weight": choice.weight, "selection_metric": metric, "validation_scores": choice.scores}}
        comp.runs.append(RunEntry(name=name, approach="hybrid", info=info, path=None, pred=fused, hybrid_of=(t.name, f.name)))
        note.update(name=name, weight=choice.weight, metric=metric, validation_scores=choice.scores,
                    n_validation=choice.n_validation)
        notes.append(note)
    return notes


def hybrid_folders(comp: Comparison) -> list[dict[str, Any]]:
    """Hybrid run folders among the runs (``eval hybrid``): what they fused, with which weight."""
    notes = []
    for r in comp.runs:
        cfg = r.info.get("config") or {}
        if r.approach == "hybrid" and "text_weight" in cfg:
            notes.append({"text": Path(str(cfg.get("text_run"))).name, "feature": Path(str(cfg.get("feature_run"))).name,
                          "name": r.name, "weight": cfg["text_weight"], "metric": cfg.get("selection_metric"),
                          "validation_scores": cfg.get("validation_scores") or {}, "n_validation": cfg.get("n_validation"),
                          "run_folder": str(r.path)})
    return notes


# ---------------------------------------------------------------- metrics, tests, tables


def _pairs(runs: Sequence[RunEntry]) -> list[tuple[RunEntry, RunEntry]]:
    """Pairs of different approaches (text first, then feature, then hybrid); all pairs when every
    run has the same approach."""
    order = {"text": 0, "feature": 1, "hybrid": 2}
    pairs = [(a, b) for a, b in itertools.combinations(runs, 2) if a.approach != b.approach]
    if not pairs:
        pairs = list(itertools.combinations(runs, 2))
    return [(a, b) if order.get(a.approach, 3) <= order.get(b.approach, 3) else (b, a) for a, b in pairs]


def _levels(comp: Comparison, level: str) -> tuple[list[str], list[str]]:
    """Levels to report, and notes about the clip level."""
    if level not in LEVEL_CHOICES:
        raise ComparisonError(f"--level must be one of {LEVEL_CHOICES}, got {level!r}")
    wanted = list(LEVELS) if level == "both" else [level]
    notes = []
    if "clips" in wanted and comp.runs[0].pred.clips is None:
        if level == "both":
            wanted.remove("clips")
            notes.append("each row is a whole clip (no clip has several rows): the clip level equals the row level")
        else:
            notes.append("each row is a whole clip (no clip has several rows): clip-level numbers are the row-level ones")
    return wanted, notes


def _aggregate_of(entry: RunEntry, split: str) -> str:
    m = ((entry.info.get("metrics") or {}).get(split) or {}).get("clips") or {}
    return m.get("aggregate") or "mean_probs"


def compare(
    comp: Comparison,
    level: str = "both",
    hybrid: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    max_disagreements: int = 40,
) -> dict[str, Any]:
    """Everything the report shows, as one JSON-able dict."""
    hybrid_notes = hybrid_folders(comp) + (add_hybrids(comp) if hybrid else [])
    levels, level_notes = _levels(comp, level)
    variants = class_variants(comp.classes)
    k = len(comp.classes)
    result: dict[str, Any] = {
        "split": comp.split, "classes": comp.classes, "levels": levels, "level_notes": level_notes,
        "variants": {v: list(ex) for v, ex in variants.items()}, "warnings": list(comp.warnings),
        "runs": [{"name": r.name, "label": r.label, "approach": r.approach, "path": str(r.path) if r.path else None,
                  "hybrid_of": list(r.hybrid_of) if r.hybrid_of else None} for r in comp.runs],
        "metrics": {}, "paired": [], "hybrids": hybrid_notes,
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "level": 0.95},
    }
    level_preds: dict[str, dict[str, Predictions]] = {}
    for lv in levels:
        level_preds[lv] = {r.name: level_predictions(r.pred, lv, _aggregate_of(r, comp.split)) for r in comp.runs}
        result["metrics"][lv] = {}
        for r in comp.runs:
            p = level_preds[lv][r.name]
            groups = p.clips if lv == "rows" else None
            per_variant = {}
            for variant, excluded in variants.items():
                labels = [i for i, c in enumerate(comp.classes) if c not in excluded]
                m = classification_metrics(p.y_true, p.y_pred, comp.classes, probs=p.probs, exclude=excluded)
                m["ci"] = bootstrap_metrics(p.y_true, p.y_pred, k, probs=p.probs, groups=groups,
                                            labels=labels if excluded else None, n_resamples=n_resamples, seed=seed)
                if p.probs is not None:
                    from eval.calibration import reliability_curve

                    keep = np.isin(p.y_true, labels)
                    m["reliability"] = reliability_curve(p.probs[keep], p.y_true[keep], n_bins=10)
                per_variant[variant] = m
            result["metrics"][lv][r.name] = per_variant
        for a, b in _pairs(comp.runs):
            pa, pb = level_preds[lv][a.name], level_preds[lv][b.name]
            pb = pb.subset(pa.ids)
            groups = pa.clips if lv == "rows" else None
            for variant, excluded in variants.items():
                labels = [i for i, c in enumerate(comp.classes) if c not in excluded]
                keep = np.isin(pa.y_true, labels)
                ya, yb, yt = pa.y_pred[keep], pb.y_pred[keep], pa.y_true[keep]
                result["paired"].append({
                    "level": lv, "variant": variant, "a": a.name, "b": b.name,
                    "mcnemar": mcnemar_test(ya == yt, yb == yt),
                    "bootstrap": paired_bootstrap(pa.y_true, pa.y_pred, pb.y_pred, k, groups=groups,
                                                  labels=labels if excluded else None,
                                                  n_resamples=n_resamples, seed=seed),
                })
    result["ablation"] = modality_ablation(comp, result, levels[0])
    result["disagreements"] = disagreements(comp, max_examples=max_disagreements)
    result["provenance"] = provenance(comp)
    return result


def _modalities(entry: RunEntry) -> tuple[str, ...] | None:
    m = (entry.info.get("dataset") or {}).get("modalities")
    return tuple(m) if m else None


def _template_id(entry: RunEntry) -> str | None:
    t = (entry.info.get("dataset") or {}).get("template")
    return t.get("id") if isinstance(t, dict) else t


def modality_ablation(comp: Comparison, result: dict[str, Any], level: str) -> list[dict[str, Any]]:
    """Groups of runs with the same approach, model, method and template whose datasets differ
    only in ``dataset.modalities``: one table per group, sorted by the number of modalities."""
    groups: dict[tuple, list[RunEntry]] = {}
    for r in comp.runs:
        if r.hybrid_of or _modalities(r) is None:
            continue
        key = (r.approach, r.info.get("model"), r.info.get("method"), _template_id(r))
        groups.setdefault(key, []).append(r)
    tables = []
    for (approach, model, method, template), members in groups.items():
        if len({_modalities(m) for m in members}) < 2:
            continue
        rows = []
        for m in sorted(members, key=lambda e: (len(_modalities(e)), _modalities(e))):
            met = result["metrics"][level][m.name]["all"]
            rows.append({"run": m.name, "modalities": list(_modalities(m)),
                         **{k: met.get(k) for k in ("n", "accuracy", "weighted_f1", "macro_f1", "uar")},
                         "ci": {k: met["ci"].get(k) for k in ("weighted_f1", "macro_f1") if k in met["ci"]}})
        tables.append({"approach": approach, "model": model, "method": method, "template": template,
                       "level": level, "rows": rows})
    return tables


# ---------------------------------------------------------------- disagreements and prompts


def _resolve_dataset_path(path: str | None, run_path: Path | None) -> Path | None:
    if not path:
        return None
    p = Path(path)
    candidates = [p] if p.is_absolute() else [Path.cwd() / p] + ([run_path / p, *(q / p for q in run_path.parents)] if run_path else [])
    return next((c for c in candidates if (c / "dataset_dict.json").exists() or (c / "state.json").exists()), None)


def load_prompts(entry: RunEntry, split: str, ids: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """The dataset's ``text`` column for ``ids``, found through run.json's dataset path;
    ``({}, reason)`` when it cannot be read (the report says so instead of failing)."""
    dpath = (entry.info.get("dataset") or {}).get("path")
    where = _resolve_dataset_path(dpath, entry.path)
    if where is None:
        return {}, f"dataset {dpath!r} of {entry.name} not found (run.json dataset.path)"
    try:
        from datasets import DatasetDict, load_from_disk

        ds = load_from_disk(str(where))
    except Exception as e:  # a corrupt or foreign folder: say so, the report still renders
        return {}, f"could not load the dataset at {where}: {e}"
    if isinstance(ds, DatasetDict):
        if split not in ds:
            return {}, f"dataset {where} has no split {split!r}"
        ds = ds[split]
    if "text" not in ds.column_names or "id" not in ds.column_names:
        return {}, f"dataset {where} has no 'id'/'text' columns"
    wanted = set(ids)
    cols = ds.select_columns(["id", "text"])
    prompts = {i: t for i, t in zip(cols["id"], cols["text"]) if i in wanted}
    return prompts, None


def disagreements(comp: Comparison, max_examples: int = 40) -> list[dict[str, Any]]:
    """For every text × feature pair (and any hybrid against its parts when no such pair
    exists): the rows where the predictions differ, one right first, most confident first, each
    with the prompt, both predictions with their probabilities, and the gold label."""
    texts = [r for r in comp.runs if r.approach == "text"]
    others = [r for r in comp.runs if r.approach == "feature"]
    pairs = list(itertools.product(texts, others)) or [(a, b) for a, b in _pairs(comp.runs)][:1]
    out = []
    for a, b in pairs:
        pa, pb = a.pred, b.pred.subset(a.pred.ids)
        diff = [k for k in range(len(pa)) if pa.predictions[k] != pb.predictions[k]]
        correct_a = sum(pa.predictions[k] == pa.labels[k] for k in diff)
        correct_b = sum(pb.predictions[k] == pb.labels[k] for k in diff)

        def prob(p: Predictions, k: int, cls: str) -> float | None:
            return None if p.probs is None else float(p.probs[k, p.classes.index(cls)])

        def rank(k: int):
            one_right = (pa.predictions[k] == pa.labels[k]) != (pb.predictions[k] == pb.labels[k])
            conf = max(prob(pa, k, pa.predictions[k]) or 0.0, prob(pb, k, pb.predictions[k]) or 0.0)
            return (not one_right, -conf, pa.ids[k])

        chosen = sorted(diff, key=rank)[:max_examples]
        ids = [pa.ids[k] for k in chosen]
        prompts, reason = load_prompts(a if a.approach == "text" else b, comp.split, ids)
        examples = []
        for k in chosen:
            sid = pa.ids[k]
            examples.append({
                "id": sid, "gold": pa.labels[k], "clip": pa.clips[k] if pa.clips else None,
                "a": {"prediction": pa.predictions[k], "p": prob(pa, k, pa.predictions[k]), "p_gold": prob(pa, k, pa.labels[k]),
                      "probs": None if pa.probs is None else dict(zip(pa.classes, np.round(pa.probs[k], 4).tolist()))},
                "b": {"prediction": pb.predictions[k], "p": prob(pb, k, pb.predictions[k]), "p_gold": prob(pb, k, pb.labels[k]),
                      "probs": None if pb.probs is None else dict(zip(pb.classes, np.round(pb.probs[k], 4).tolist()))},
                "prompt": prompts.get(sid),
            })
        out.append({"a": a.name, "b": b.name, "n": len(pa), "n_disagree": len(diff), "a_right": int(correct_a),
                    "b_right": int(correct_b), "both_wrong": int(len(diff) - correct_a - correct_b),
                    "prompt_note": reason, "examples": examples,
                    "all_ids": [pa.ids[k] for k in diff]})
    return out


# ---------------------------------------------------------------- provenance


def provenance(comp: Comparison) -> dict[str, Any]:
    runs = []
    for r in comp.runs:
        d = r.info.get("dataset") or {}
        t = d.get("template")
        runs.append({
            "name": r.name, "path": str(r.path) if r.path else None, "approach": r.approach,
            "model": r.info.get("model"), "method": r.info.get("method"), "seed": r.info.get("seed"),
            "dataset_path": d.get("path"), "dataset_name": d.get("name"), "manifest_sha256": d.get("manifest_sha256"),
            "template": (f"{t.get('id')} v{t.get('version')} ({t.get('hash')})" if isinstance(t, dict) else t),
            "modalities": d.get("modalities"), "converters_hash": d.get("converters_hash"),
            "git_commit": r.info.get("git_commit"), "date": r.info.get("date"), "config": r.info.get("config"),
            "timings": r.info.get("timings"),
        })
    return {
        "report_date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "report_git_commit": git_commit(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
        "runs": runs,
    }
