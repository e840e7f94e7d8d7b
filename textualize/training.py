"""The one training loop of the project: transformers' ``Trainer``, for text and feature models.

``llm/finetune.py`` (BERT, LLaMA-family LoRA/QLoRA) and ``baselines/feature_fusion/train.py``
(LFAN, early/late fusion, EMENet) both build a ``torch.nn.Module`` whose ``forward(**batch)``
returns ``logits`` (and ``loss`` when the model computes its own), then call
:func:`build_trainer` and :func:`finish_run`. What the loop adds on top of ``Trainer``:

- class-weighted cross-entropy (``class_weighting="balanced"``) or class-balanced sampling, for
  imbalanced corpora; models with their own loss (generative LM loss, multitask) keep it;
- model selection and early stopping on validation weighted F1 (or macro F1, accuracy, UAR),
  computed by ``eval.metrics`` — the same function the report uses;
- ``RUN/metrics.jsonl`` (one line per evaluation), ``RUN/predictions/<split>.jsonl`` and
  ``RUN/run.json`` in the shared format (``eval.predictions``), row- and clip-level;
- ``--config run.yaml`` plus command-line overrides for any dataclass arguments
  (:func:`parse_args`), as TRL's scripts do.

Gradient accumulation, mixed precision, checkpoints, resume, logging (``--report_to
tensorboard``), DDP/FSDP/DeepSpeed under ``accelerate launch`` all come from ``Trainer``.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

CLASS_WEIGHTINGS = ("balanced", "none", "sampler")
FREQUENCY_WEIGHTED_METRICS = ("weighted_f1", "accuracy")


def resolve_class_weighting(requested: str, selection_metric: str) -> str:
    """``auto`` -> the loss that matches the selection metric: no weighting for metrics that weight
    classes by their frequency (weighted F1, accuracy), where a weighted loss trades majority-class
    hits for rare-class ones; ``balanced`` for metrics that count every class alike (macro F1, UAR)."""
    if requested != "auto":
        if requested not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting must be auto or one of {CLASS_WEIGHTINGS}, got {requested!r}")
        return requested
    metric = str(selection_metric or "weighted_f1").removeprefix("eval_")
    return "none" if metric in FREQUENCY_WEIGHTED_METRICS else "balanced"


# ---------------------------------------------------------------- arguments


def parse_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple:
    """Parse dataclass arguments from ``--config FILE.yaml`` and the command line (which wins).

    The YAML file is read with ``yaml.safe_load``; its keys are the dataclasses' field names.
    Unknown keys in the file are an error that names them (a typo must not be ignored).
    """
    import yaml
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types)
    parser.add_argument("--config", default=None, help="YAML file of arguments; command-line flags override it.")
    if _no_accelerator() and any(f.name == "use_cpu" for t in dataclass_types for f in dataclasses.fields(t)):
        # Trainer runs on the CPU here anyway; saying so lets ``--bf16 true`` mean CPU bf16 autocast
        # (1.46x faster LoRA steps on an avx512_bf16 CPU, bench/RESULTS.md) instead of refusing it
        parser.set_defaults(use_cpu=True)
    config_path = None
    if "--config" in argv:
        k = argv.index("--config")
        if k + 1 >= len(argv):
            raise SystemExit("--config needs a file")
        config_path = argv[k + 1]
        del argv[k : k + 2]
    else:
        for k, a in enumerate(argv):
            if a.startswith("--config="):
                config_path = a.split("=", 1)[1]
                del argv[k]
                break
    if config_path:
        with open(config_path, encoding="utf-8") as f:
            values = yaml.safe_load(f) or {}
        if not isinstance(values, dict):
            raise SystemExit(f"{config_path}: expected a mapping of argument names to values")
        known = {f.name for t in dataclass_types for f in dataclasses.fields(t)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SystemExit(f"{config_path}: unknown arguments {unknown}")
        parser.set_defaults(**values)
        # required fields given in the file no longer need the flag
        for action in parser._actions:
            if action.dest in values:
                action.required = False
    parsed = parser.parse_args_into_dataclasses(args=argv)
    return tuple(parsed[: len(dataclass_types)])  # the rest is the namespace holding --config


class SelectsOnlyWhenEvaluating:
    """Mixin for ``TrainingArguments`` subclasses whose ``load_best_model_at_end`` defaults to true:
    with ``--eval_strategy no`` there is nothing to select from, so selection turns off instead of
    failing transformers' check that the save and eval strategies match."""

    def __post_init__(self) -> None:
        if str(getattr(self.eval_strategy, "value", self.eval_strategy)) == "no":
            self.load_best_model_at_end = False
        super().__post_init__()


def _no_accelerator() -> bool:
    """True when torch sees no CUDA, XPU or MPS device (``Trainer`` would pick the CPU)."""
    import torch

    backends = (torch.cuda, getattr(torch, "xpu", None), getattr(torch.backends, "mps", None))
    return not any(b is not None and b.is_available() for b in backends)


# ---------------------------------------------------------------- loss, sampling, metrics


def class_weights(label_ids: Sequence[int], n_classes: int) -> np.ndarray:
    """'balanced' weights n / (k · count_c), as scikit-learn's compute_class_weight; classes absent
    from training get weight 0 (they cannot be learnt, and must not blow up the loss)."""
    counts = np.bincount(np.asarray(label_ids, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w


def make_compute_metrics(classes: Sequence[str], ignore_index: int = -100) -> Callable:
    """``compute_metrics`` for ``Trainer``: ``eval.metrics.classification_metrics`` on arg-max
    predictions; per-frame logits ``(B, T, C)`` are scored per labelled frame."""
    from scipy.special import softmax

    from eval.metrics import classification_metrics, summary

    def compute(eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        labels = eval_pred.label_ids
        logits = np.asarray(logits, dtype=np.float64).reshape(-1, np.shape(logits)[-1])
        labels = np.asarray(labels).reshape(-1)
        keep = labels != ignore_index
        probs = softmax(logits[keep], axis=1)
        m = classification_metrics(labels[keep], probs.argmax(axis=1), classes, probs=probs)
        return summary(m)

    return compute


def build_trainer(
    model,
    training_args,
    train_dataset,
    eval_dataset,
    data_collator,
    classes: Sequence[str],
    train_label_ids: Sequence[int] | None = None,
    class_weighting: str = "balanced",
    early_stopping_patience: int | None = 3,
    processing_class=None,
    compute_metrics: Callable | None | bool = True,
    callbacks: Sequence[Any] = (),
    **trainer_kwargs,
):
    """A ``Trainer`` with the project's loss, sampling, selection metric and metrics log.

    ``training_args`` is a ``transformers.TrainingArguments``; set ``metric_for_best_model`` to
    one of ``eval.metrics.SELECTION_METRICS`` (default there: weighted F1). ``compute_metrics=True``
    uses :func:`make_compute_metrics`; pass a callable for models that need another (generative
    heads score label strings), or ``None`` to evaluate the loss only.
    """
    import torch
    from transformers import EarlyStoppingCallback, Trainer, TrainerCallback

    if class_weighting not in CLASS_WEIGHTINGS:
        raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {class_weighting!r}")
    weights = None
    if class_weighting in ("balanced", "sampler"):
        if train_label_ids is None:
            raise ValueError(f"class_weighting={class_weighting!r} needs train_label_ids")
        weights = class_weights(train_label_ids, len(classes))

    run_dir = Path(training_args.output_dir)

    class MetricsLog(TrainerCallback):
        """One JSON line per evaluation in RUN/metrics.jsonl (epoch, step, all eval metrics)."""

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            if state.is_world_process_zero and metrics:
                run_dir.mkdir(parents=True, exist_ok=True)
                with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps({"epoch": state.epoch, "step": state.global_step, **metrics}) + "\n")

    class ProjectTrainer(Trainer):
        def train(self, *args, **kwargs):
            # some media libraries leave autograd globally disabled (a suspended generator inside
            # no_grad, for one); training must not silently depend on what ran before it
            with torch.enable_grad():
                return super().train(*args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if class_weighting != "balanced" or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
            w = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), weight=w.float(), ignore_index=-100
            )
            extra = outputs.get("aux_loss") if isinstance(outputs, Mapping) else None
            if extra is not None:  # multitask models add their other heads' losses here
                loss = loss + extra
            return (loss, outputs) if return_outputs else loss

        def _get_eval_sampler(self, eval_dataset):
            # Trainer draws evaluation batches length-grouped (a seeded shuffle) when
            # train_sampling_strategy="group_by_length"; predictions must come back in row order
            # (callers sort their evaluation sets by length themselves when they want less padding).
            if eval_dataset is None or self.args.world_size > 1:
                return super()._get_eval_sampler(eval_dataset)
            return torch.utils.data.SequentialSampler(eval_dataset)

        def _get_train_sampler(self, train_dataset=None):
            if class_weighting != "sampler":
                return super()._get_train_sampler(train_dataset)
            ids = np.asarray(train_label_ids)
            sample_w = torch.as_tensor(weights[ids], dtype=torch.double)
            g = torch.Generator().manual_seed(int(self.args.seed))
            return torch.utils.data.WeightedRandomSampler(sample_w, num_samples=len(ids), replacement=True, generator=g)

    all_callbacks = [MetricsLog(), *callbacks]
    if early_stopping_patience and getattr(training_args, "load_best_model_at_end", False):
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    if compute_metrics is True:
        compute_metrics = make_compute_metrics(classes)
    return ProjectTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        processing_class=processing_class,
        compute_metrics=compute_metrics or None,
        callbacks=all_callbacks,
        **trainer_kwargs,
    )


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` in the run folder (for ``--resume_from_checkpoint auto``)."""
    from transformers.trainer_utils import get_last_checkpoint

    p = Path(output_dir)
    return get_last_checkpoint(str(p)) if p.is_dir() else None


# ---------------------------------------------------------------- outputs


def write_split_predictions(
    run_dir: str | Path,
    split: str,
    ids: Sequence[str],
    labels: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    clips: Sequence[str | None] | None = None,
    aggregate: str = "mean_probs",
    extra: Sequence[Mapping[str, Any]] | None = None,
    logits: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write ``predictions/<split>.jsonl`` (and ``<split>.clip.jsonl`` when rows are parts of
    clips) and return the metrics of each level, all through ``eval``."""
    from eval.aggregate import aggregate_predictions
    from eval.metrics import classification_metrics
    from eval.predictions import prediction_rows, read_predictions, write_predictions

    run_dir = Path(run_dir)
    extra_rows = [dict(e) for e in extra] if extra is not None else [{} for _ in ids]
    if logits is not None:
        for row, lg in zip(extra_rows, np.asarray(logits, dtype=np.float64)):
            row["logits"] = [round(float(v), 5) for v in lg]
    has_clips = clips is not None and any(c is not None for c in clips)
    rows = prediction_rows(ids, labels, probs, classes, clips=clips if has_clips else None, extra=extra_rows)
    path = write_predictions(run_dir / "predictions" / f"{split}.jsonl", rows)
    pred = read_predictions(path, classes)  # what the report will read: metrics from the file itself
    out = {"rows": classification_metrics(pred.y_true, pred.y_pred, classes, probs=pred.probs)}
    if has_clips:
        clip_pred = aggregate_predictions(pred, aggregate)
        clip_rows = prediction_rows(clip_pred.ids, clip_pred.labels, clip_pred.probs, classes)
        write_predictions(run_dir / "predictions" / f"{split}.clip.jsonl", clip_rows)
        out["clips"] = classification_metrics(clip_pred.y_true, clip_pred.y_pred, classes, probs=clip_pred.probs)
        out["clips"]["aggregate"] = aggregate
    return out


def finish_run(
    run_dir: str | Path,
    *,
    approach: str,
    model: str,
    method: str,
    dataset_dir: str | Path,
    classes: Sequence[str],
    seed: int,
    metrics: Mapping[str, Any],
    config: Mapping[str, Any],
    timings: Mapping[str, float],
    **extra: Any,
) -> Path:
    """Write ``RUN/run.json`` (``eval.predictions.write_run_json``) and the resolved config."""
    from eval.predictions import dataset_provenance, write_run_json
    from textualize.manifest import atomic_write_text

    import yaml

    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(json.loads(json.dumps(dict(config), default=str)), sort_keys=True))
    return write_run_json(
        run_dir,
        {
            "approach": approach,
            "model": model,
            "method": method,
            "dataset": dataset_provenance(dataset_dir),
            "classes": list(classes),
            "seed": seed,
            "metrics": metrics,
            "config": config,
            "timings": timings,
            **extra,
        },
    )


class Stopwatch:
    """Named wall-clock timings for run.json (``with sw("train"): ...``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        watch = self

        class _Span:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                watch.seconds[name] = round(watch.seconds.get(name, 0.0) + time.perf_counter() - self.t0, 3)

        return _Span()
