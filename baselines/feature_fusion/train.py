"""Train and evaluate a feature model on a built dataset, through the project's one training loop.

    accelerate launch baselines/feature_fusion/train.py --dataset DIR --model {lfan,early,late,emenet} --output_dir RUN
    python baselines/feature_fusion/train.py --config run.yaml --model lfan --output_dir RUN   # same thing

Writes what the text runs write (``textualize.training``): ``RUN/run.json`` (approach
``feature``), ``RUN/predictions/<split>.jsonl`` (id, label, prediction, probs, clip, logits,
normalised entropy) and ``RUN/metrics.jsonl``. A temperature fitted on validation
(``eval.calibration.fit_temperature``) is recorded with the calibrated ECE/NLL of every split.
``--kfold K`` pools every split and runs K folds grouped by speaker (``RUN/fold-i/``), then writes
the pooled out-of-fold predictions and per-fold figures in ``RUN/``. An interrupted run resumes
from its newest checkpoint; finished folds are not redone.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

if __package__ in (None, ""):  # `python baselines/feature_fusion/train.py` / `accelerate launch` run it as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from baselines.feature_fusion.args import FeatureArguments, FeatureTrainingArguments  # noqa: E402
from baselines.feature_fusion.registry import FEATURE_MODELS  # noqa: E402

log = logging.getLogger("feature_fusion")


# ---------------------------------------------------------------- arguments


def _peek_model(argv: Sequence[str]) -> str | None:
    """The --model value from the command line or the --config file (to add the model's own flags)."""
    import yaml

    argv = list(argv)
    for k, a in enumerate(argv):
        if a == "--model" and k + 1 < len(argv):
            return argv[k + 1]
        if a.startswith("--model="):
            return a.split("=", 1)[1]
    for k, a in enumerate(argv):
        path = argv[k + 1] if a == "--config" and k + 1 < len(argv) else a.split("=", 1)[1] if a.startswith("--config=") else None
        if path and Path(path).is_file():
            with open(path, encoding="utf-8") as f:
                values = yaml.safe_load(f) or {}
            if isinstance(values, dict) and values.get("model"):
                return str(values["model"])
    return None


def parse(argv: Sequence[str] | None = None):
    """(FeatureArguments, FeatureTrainingArguments, model args or None, spec)."""
    from textualize.registry import UnknownBackendError
    from textualize.training import parse_args

    argv = list(sys.argv[1:] if argv is None else argv)
    name = _peek_model(argv)
    spec = None
    types: list[type] = [FeatureArguments, FeatureTrainingArguments]
    if name:
        try:
            spec = FEATURE_MODELS.get(name)()
        except UnknownBackendError as e:
            raise SystemExit(str(e)) from None
        if getattr(spec, "args_class", None) is not None:
            types.append(spec.args_class)
    parsed = parse_args(types, argv)
    fargs, targs = parsed[0], parsed[1]
    margs = parsed[2] if len(parsed) > 2 else None
    if not targs.output_dir:
        raise SystemExit("--output_dir is required (the run folder)")
    return fargs, targs, margs, spec


def merged_args(fargs, targs, margs) -> SimpleNamespace:
    """One namespace for the spec: feature flags, the model's own flags, ``.training``, ``.split_ids``."""
    values = dataclasses.asdict(fargs)
    if margs is not None:
        values.update(dataclasses.asdict(margs))
    ns = SimpleNamespace(**values, training=targs, split_ids=None)
    ns.stream_list = fargs.stream_list
    ns.channels = fargs.channels
    return ns


# ---------------------------------------------------------------- dataset facts


def dataset_classes(dataset_dir: str | Path) -> list[str]:
    manifest = Path(dataset_dir) / "manifest.json"
    if not manifest.exists():
        raise SystemExit(f"{dataset_dir}: no manifest.json — build the dataset first with `textualize build-dataset`")
    info = json.loads(manifest.read_text(encoding="utf-8"))
    try:
        return list(info["label_map"]["classes"])
    except (KeyError, TypeError):
        raise SystemExit(f"{manifest}: no label_map.classes (not a textualize dataset?)") from None


def sample_table(dataset_dir: str | Path) -> list[dict[str, Any]]:
    """id, label, split, speaker, clip of every sample of the DatasetDict (the text runs' samples)."""
    from datasets import load_from_disk

    dd = load_from_disk(str(dataset_dir))
    rows = []
    for split, ds in dd.items():
        cols = set(ds.column_names)
        n = len(ds)
        speakers = ds["speaker"] if "speaker" in cols else [""] * n
        clips = ds["cue_clip_id"] if "cue_clip_id" in cols else [""] * n
        for sid, label, spk, clip in zip(ds["id"], ds["label"], speakers, clips):
            rows.append({"id": sid, "label": label, "split": split, "speaker": spk or "", "cue_clip_id": clip or ""})
    return rows


def kfold_splits(table: list[dict[str, Any]], k: int, fold_by: str, seed: int) -> list[dict[str, list[str]]]:
    """Group k-fold over all samples (stratified when every class allows): fold i is test,
    fold i+1 validation, the rest train. Samples with an empty group value form their own group."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    if fold_by not in ("speaker", "cue_clip_id", "id"):
        raise SystemExit(f"--fold_by must be speaker, cue_clip_id or id, got {fold_by!r}")
    groups = [r[fold_by] or r["id"] for r in table]
    n_groups = len(set(groups))
    if n_groups < k:
        raise SystemExit(f"--kfold {k}: only {n_groups} distinct {fold_by} groups")
    labels = [r["label"] for r in table]
    x = np.zeros(len(table))
    try:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        test_folds = [test for _, test in splitter.split(x, labels, groups)]
    except ValueError:
        test_folds = [test for _, test in GroupKFold(n_splits=k).split(x, labels, groups)]
    out = []
    for i in range(k):
        test, val = set(test_folds[i].tolist()), set(test_folds[(i + 1) % k].tolist())
        out.append({
            "train": [r["id"] for j, r in enumerate(table) if j not in test and j not in val],
            "validation": [r["id"] for j, r in enumerate(table) if j in val],
            "test": [r["id"] for j, r in enumerate(table) if j in test],
        })
    return out


# ---------------------------------------------------------------- one run


def _uncertainty(pred: dict[str, Any], temperature: float | None) -> tuple[list[dict], np.ndarray]:
    """Per-row normalised entropy (raw and, with a temperature, calibrated) and the logits."""
    from eval.calibration import apply_temperature, normalized_entropy, probs_to_logits

    probs = np.asarray(pred["probs"], dtype=np.float64)
    logits = np.asarray(pred["logits"], dtype=np.float64) if pred.get("logits") is not None else probs_to_logits(probs)
    extra = [dict(e) for e in pred.get("extra") or [{} for _ in probs]]
    for row, clip in zip(extra, pred.get("clips") or []):
        if clip is not None:
            row.setdefault("clip", str(clip))  # kept on every row, aggregated only when shared
    ent = normalized_entropy(probs)
    ent_cal = normalized_entropy(apply_temperature(logits, temperature)) if temperature else None
    for k, row in enumerate(extra):
        row["entropy"] = round(float(ent[k]), 6)
        if ent_cal is not None:
            row["entropy_calibrated"] = round(float(ent_cal[k]), 6)
    return extra, logits


def _clips_if_consistent(pred: dict[str, Any]) -> list[str] | None:
    """Clip ids for clip-level aggregation: only when some clip holds several samples (windows,
    utterances of one video) whose gold labels agree."""
    clips = pred.get("clips")
    if clips is None or any(c is None for c in clips) or len(set(clips)) == len(clips):
        return None
    seen: dict[str, str] = {}
    for c, label in zip(clips, pred["labels"]):
        if seen.setdefault(str(c), label) != label:
            log.warning("clip %s has samples with different labels: no clip-level aggregation", c)
            return None
    return list(clips)


def train_once(spec, fargs, targs, margs, run_dir: Path, split_ids: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Train one model (one fold), predict every split, write predictions and run.json."""
    import torch

    from eval.calibration import apply_temperature, brier_score, expected_calibration_error, fit_temperature, negative_log_likelihood
    from textualize.training import Stopwatch, build_trainer, finish_run, last_checkpoint, resolve_class_weighting, write_split_predictions

    sw = Stopwatch()
    targs = dataclasses.replace(targs, output_dir=str(run_dir)) if str(run_dir) != targs.output_dir else targs
    args = merged_args(fargs, targs, margs)
    args.split_ids = split_ids
    classes = dataset_classes(fargs.dataset)
    with sw("load"):
        datasets = spec.datasets(fargs.dataset, args, classes)
    if "train" not in datasets or len(datasets["train"]) == 0:
        raise SystemExit(f"{fargs.dataset}: no training samples for the feature model")
    val = datasets.get("validation")
    if val is None or len(val) == 0:
        log.warning("no validation split: no model selection, early stopping or temperature scaling")
        targs = dataclasses.replace(targs, eval_strategy="no", load_best_model_at_end=False)
        val = None
    torch.manual_seed(targs.seed)
    model = spec.build(args, classes, datasets)
    train_label_ids = getattr(datasets["train"], "label_ids", None)
    compute_metrics: Any = True  # the loop's default: per labelled frame
    if val is not None and hasattr(spec, "compute_metrics"):
        compute_metrics = spec.compute_metrics(args, classes, val)  # per sample, as reported
    trainer = build_trainer(
        model, targs, datasets["train"], val, spec.collator(args), classes,
        train_label_ids=train_label_ids,
        class_weighting=resolve_class_weighting(fargs.class_weighting, targs.metric_for_best_model),
        early_stopping_patience=fargs.early_stopping_patience or None, compute_metrics=compute_metrics,
    )
    resume = last_checkpoint(run_dir) if fargs.resume else None
    if resume:
        log.warning("resuming from %s", resume)
    with sw("train"):
        trainer.train(resume_from_checkpoint=resume)
    preds: dict[str, dict[str, Any]] = {}
    with sw("predict"):
        for split, ds in datasets.items():
            if len(ds):
                preds[split] = spec.predict(trainer, ds, args)
    temperature = None
    if fargs.temperature_scaling and "validation" in preds and preds["validation"].get("logits") is not None:
        v = preds["validation"]
        y = [classes.index(label) for label in v["labels"]]
        temperature = fit_temperature(np.asarray(v["logits"]), y)
    metrics: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        for split, pred in preds.items():
            extra, logits = _uncertainty(pred, temperature)
            metrics[split] = write_split_predictions(
                run_dir, split, pred["ids"], pred["labels"], np.asarray(pred["probs"]), classes,
                clips=_clips_if_consistent(pred), aggregate=fargs.aggregate, extra=extra, logits=logits,
            )
            if temperature is not None:
                y = [classes.index(label) for label in pred["labels"]]
                cal = apply_temperature(logits, temperature)
                metrics[split]["calibrated"] = {
                    "temperature": temperature, "ece": expected_calibration_error(cal, y),
                    "nll": negative_log_likelihood(cal, y), "brier": brier_score(cal, y),
                }
        info = spec.describe(trainer.model, args)
        best = trainer.state.best_metric
        finish_run(
            run_dir, approach="feature", model=fargs.model, method=info.get("method", fargs.model),
            dataset_dir=fargs.dataset, classes=classes, seed=targs.seed, metrics=metrics,
            config={"feature": dataclasses.asdict(fargs), "model": dataclasses.asdict(margs) if margs else {},
                    "training": targs.to_dict()},
            timings=sw.seconds, model_info=info, temperature=temperature,
            best_validation=best, best_checkpoint=trainer.state.best_model_checkpoint,
            epochs_run=trainer.state.epoch, split_ids=split_ids is not None,
            streams=info.get("streams_manifest"), streams_used=info.get("streams"),
            speaker_normalisation=(info.get("streams_manifest") or {}).get("speaker_normalisation"),
        )
    return metrics


# ---------------------------------------------------------------- k-fold


def run_kfold(spec, fargs, targs, margs) -> dict[str, Any]:
    """K folds in RUN/fold-i (finished folds are skipped), then pooled out-of-fold predictions."""
    from eval.metrics import summary
    from eval.predictions import read_predictions, read_run
    from textualize.training import finish_run, write_split_predictions

    run_dir = Path(targs.output_dir)
    table = sample_table(fargs.dataset)
    folds = kfold_splits(table, fargs.kfold, fargs.fold_by, targs.seed)
    wanted = [int(f) for f in fargs.folds.split(",") if f.strip()] or list(range(fargs.kfold))
    for i in wanted:
        fold_dir = run_dir / f"fold-{i}"
        if (fold_dir / "run.json").exists() and (fold_dir / "predictions" / "test.jsonl").exists():
            log.warning("fold %d already finished in %s", i, fold_dir)
            continue
        train_once(spec, fargs, dataclasses.replace(targs, output_dir=str(fold_dir)), margs, fold_dir, folds[i])
    done = [i for i in range(fargs.kfold) if (run_dir / f"fold-{i}" / "run.json").exists()]
    if len(done) < fargs.kfold:
        log.warning("%d of %d folds done; pooled results are written when all are", len(done), fargs.kfold)
        return {}
    classes = dataset_classes(fargs.dataset)
    ids, labels, probs, extra, per_fold, temps = [], [], [], [], [], []
    for i in done:
        run = read_run(run_dir / f"fold-{i}")
        p = read_predictions(run_dir / f"fold-{i}" / "predictions" / "test.jsonl", classes)
        ids += p.ids
        labels += p.labels
        probs.append(p.probs)
        extra += [{**e, "fold": i} for e in (p.extra or [{} for _ in p.ids])]
        per_fold.append(summary(run.info["metrics"]["test"]["rows"]))
        temps.append(run.info.get("temperature"))
    pooled = write_split_predictions(run_dir, "test", ids, labels, np.concatenate(probs), classes, extra=extra)
    if all(t is not None for t in temps) and all("logits" in e for e in extra):
        from eval.calibration import apply_temperature, brier_score, expected_calibration_error, negative_log_likelihood

        cal = np.concatenate([apply_temperature(np.asarray([e["logits"]]), temps[done.index(e["fold"])]) for e in extra])
        y = [classes.index(label) for label in labels]
        pooled["calibrated"] = {"temperature_per_fold": temps, "ece": expected_calibration_error(cal, y),
                                "nll": negative_log_likelihood(cal, y), "brier": brier_score(cal, y)}
    keys = per_fold[0].keys()
    fold_stats = {k: {"mean": float(np.mean([f[k] for f in per_fold])), "sd": float(np.std([f[k] for f in per_fold], ddof=1))} for k in keys}
    finish_run(
        run_dir, approach="feature", model=fargs.model, method=f"{fargs.model} {fargs.kfold}-fold by {fargs.fold_by}",
        dataset_dir=fargs.dataset, classes=classes, seed=targs.seed,
        metrics={"test": pooled, "folds": per_fold, "fold_mean_sd": fold_stats},
        config={"feature": dataclasses.asdict(fargs), "model": dataclasses.asdict(margs) if margs else {}, "training": targs.to_dict()},
        timings={}, kfold=fargs.kfold, fold_temperatures=temps,
        streams=read_run(run_dir / f"fold-{done[0]}").info.get("streams"),
    )
    return pooled


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    fargs, targs, margs, spec = parse(argv)
    if fargs.kfold:
        metrics = run_kfold(spec, fargs, targs, margs)
        head = metrics.get("rows", {}) if metrics else {}
    else:
        metrics = train_once(spec, fargs, targs, margs, Path(targs.output_dir))
        head = metrics.get("test", metrics.get("validation", {})).get("rows", {}) if metrics else {}
    if head:
        print(json.dumps({k: round(head[k], 4) for k in ("n", "accuracy", "weighted_f1", "macro_f1", "uar") if k in head}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
