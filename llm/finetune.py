"""Fine-tune a text model on textualized prompts and predict: BERT-family or LLaMA-family.

    # defaults: MiniLM-L6 BERT (offline), full fine-tuning, mean pooling, lr 1e-4, 4 epochs, the loss
    # weighting that fits the selection metric (none for validation weighted F1), the next 2 turns on
    # dialogue corpora, length-grouped dynamic padding; then predictions for validation/test
    python llm/finetune.py --dataset data/meld --output_dir runs/meld-minilm
    accelerate launch --config_file llm/configs/cpu.yaml llm/finetune.py --dataset data/meld --output_dir runs/meld-minilm

    # a run file plus command-line overrides (the command line wins)
    python llm/finetune.py --config llm/configs/meld_minilm.yaml --output_dir runs/meld-minilm --learning_rate 5e-5

    # the stronger offline encoder (after `textualize fetch-model mpnet-base`), LoRA on MiniLM
    python llm/finetune.py --dataset data/meld --output_dir runs/meld-mpnet --model mpnet-base
    python llm/finetune.py --dataset data/meld --output_dir runs/meld-lora --method lora --lora_r 16 --learning_rate 5e-4

    # LLaMA-family decoders (llm/decoder.py): LoRA/QLoRA, classification or generative head, zero-shot
    python llm/finetune.py --dataset data/meld --output_dir runs/smol-cls --model smollm2-135m-instruct-gguf --method lora
    python llm/finetune.py --dataset data/meld --output_dir runs/smol-gen --model smollm2-135m-instruct-gguf --method lora --head generative
    python llm/finetune.py --dataset data/meld --output_dir runs/smol-zs --model smollm2-135m-instruct-gguf --method zero-shot

    # GPUs: one card, several (DDP), or sharded (DeepSpeed ZeRO-3) for models that do not fit one card
    accelerate launch --config_file llm/configs/single_gpu.yaml llm/finetune.py --dataset data/meld --output_dir runs/x --bf16 true
    accelerate launch --config_file llm/configs/multi_gpu.yaml llm/finetune.py --dataset data/meld --output_dir runs/x --bf16 true
    accelerate launch --config_file llm/configs/deepspeed_zero3.yaml llm/finetune.py --dataset data/meld --output_dir runs/x --model meta-llama/Llama-3.1-8B-Instruct --method lora --bf16 true

    # leave-one-speaker-out cross-validation (one model per speaker; out-of-fold predictions)
    python llm/finetune.py --dataset data/emodb --output_dir runs/emodb --folds speaker

An interrupted run resumes from its last checkpoint when started again with the same
``--output_dir`` (``--resume_from_checkpoint no`` starts afresh; a path picks one checkpoint).
Arguments: ``python llm/finetune.py --help`` (ScriptArguments, ModelArguments in ``llm/args.py``,
and transformers' TrainingArguments with this project's defaults below).

Outputs in ``--output_dir``: the model (or LoRA adapter) and tokenizer, ``config.yaml``,
``run.json``, ``metrics.jsonl`` (one line per evaluation), ``predictions/<split>.jsonl`` (and
``<split>.clip.jsonl`` when rows are windows/segments of one media file).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

if __package__ in (None, ""):  # `python llm/finetune.py` / `accelerate launch llm/finetune.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import TrainingArguments  # noqa: E402

from llm.args import ModelArguments, ScriptArguments, split_list  # noqa: E402
from textualize.training import SelectsOnlyWhenEvaluating  # noqa: E402

logger = logging.getLogger("llm.finetune")


@dataclass
class FinetuneTrainingArguments(SelectsOnlyWhenEvaluating, TrainingArguments):
    """transformers' TrainingArguments with defaults for this task (every one can be overridden)."""

    output_dir: Optional[str] = field(default=None, metadata={"help": "Run folder: model, checkpoints, run.json, predictions/ (required)."})
    num_train_epochs: float = field(default=4.0, metadata={"help": "Epochs (early stopping may end sooner)."})
    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Peak learning rate (after warmup). Default: the offline MiniLM-L6's best on MELD (run C in "
                          "bench/RESULTS.md); 12-layer encoders want --head_learning_rate (llm/configs/meld_mpnet.yaml)."},
    )
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Batch size per device for training."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Batch size per device for evaluation."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warmup steps, or a fraction of all steps when < 1."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: no | steps | epoch."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save checkpoints: no | steps | epoch | best."})
    logging_strategy: str = field(default="steps", metadata={"help": "When to log the training loss."})
    logging_steps: float = field(default=50, metadata={"help": "Log every N optimisation steps."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept (the best one always)."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Keep the checkpoint with the best selection metric."})
    metric_for_best_model: Optional[str] = field(
        default="selection", metadata={"help": "Default 'selection': eval_<--selection_metric> (higher is better)."}
    )
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={"help": "group_by_length (default: batches of similar length, less padding) | random | sequential."},
    )
    dataloader_num_workers: int = field(default=0, metadata={"help": "Data-loading worker processes."})


ALL_ARGUMENTS = (ScriptArguments, ModelArguments, FinetuneTrainingArguments)


class FinetuneError(ValueError):
    """Bad input to finetune.py: the message says what to change."""


# ---------------------------------------------------------------- dataset


def load_dataset_dir(path: str, need_labels: bool = True):
    """The DatasetDict of a ``build-dataset`` folder and its class list (from ``manifest.json``)."""
    from datasets import DatasetDict, load_from_disk

    p = Path(path)
    if not p.is_dir():
        raise FinetuneError(f"--dataset {path}: no such folder (build one with `textualize build-dataset`)")
    if not (p / "dataset_dict.json").exists():
        raise FinetuneError(f"--dataset {path}: not a dataset folder written by `textualize build-dataset` (no dataset_dict.json)")
    dd = load_from_disk(str(p))
    if not isinstance(dd, DatasetDict) or not len(dd):
        raise FinetuneError(f"--dataset {path}: expected a DatasetDict with splits train/validation/test")
    classes = None
    manifest = p / "manifest.json"
    if manifest.exists():
        classes = (json.loads(manifest.read_text(encoding="utf-8")).get("label_map") or {}).get("classes")
    for split, ds in dd.items():
        missing = [c for c in ("id", "label", "label_id") if c not in ds.column_names]
        if missing and need_labels:
            raise FinetuneError(f"--dataset {path}: split '{split}' has no {', '.join(missing)} column(s); a labelled dataset is needed")
    if classes is None:
        labels = {}
        for ds in dd.values():
            for name, k in zip(ds["label"], ds["label_id"]):
                labels[int(k)] = name
        classes = [labels[k] for k in sorted(labels)]
    classes = [str(c) for c in classes]
    for split, ds in dd.items():
        bad = sorted({int(k) for k in ds["label_id"] if not 0 <= int(k) < len(classes)})
        if bad:
            raise FinetuneError(f"--dataset {path}: split '{split}' has label ids {bad} outside the {len(classes)} classes")
    return dd, classes


def fold_plan(dd, script_args) -> tuple[str | None, list[Any]]:
    """(column, values) when the run is k-fold, else (None, [])."""
    spec = script_args.folds
    if spec in ("none", "", None):
        return None, []
    column = "fold" if spec == "auto" else spec
    pool = [dd[s] for s in ("train", "validation") if s in dd]
    if not pool or column not in pool[0].column_names:
        if spec == "auto":
            return None, []
        raise FinetuneError(f"--folds {spec}: the train split has no '{column}' column")
    values = sorted({v for ds in pool for v in ds[column]}, key=str)
    values = [v for v in values if v not in ("", None)]
    if len(values) < 2:
        raise FinetuneError(f"--folds {spec}: column '{column}' has {len(values)} distinct value(s); k-fold needs at least 2")
    return column, values


def fold_splits(dd, column: str, value: Any):
    """Train on every labelled non-test row whose ``column`` differs from ``value``, validate on the rest."""
    from datasets import DatasetDict, concatenate_datasets

    pool = concatenate_datasets([dd[s] for s in ("train", "validation") if s in dd])
    keys = pool[column]
    held = [i for i, v in enumerate(keys) if v == value]
    rest = [i for i, v in enumerate(keys) if v != value]
    out = {"train": pool.select(rest), "validation": pool.select(held)}
    if "test" in dd:
        out["test"] = dd["test"]
    return DatasetDict(out)


def clip_ids(ds) -> list[str | None] | None:
    """The media-file id of each row when rows are windows/segments of one clip, else None."""
    if "cue_clip_id" not in ds.column_names:
        return None
    clips = [c or None for c in ds["cue_clip_id"]]
    named = [c for c in clips if c]
    if not named or len(set(named)) == len(clips):
        return None
    return [c if c else rid for c, rid in zip(clips, ds["id"])]


# ---------------------------------------------------------------- model family


def pick_family(script_args, model_args) -> str:
    from llm.models import is_decoder, resolve_model

    if script_args.head == "generative" or script_args.method == "zero-shot":
        return "decoder"
    path, gguf = resolve_model(script_args.model)
    if model_args.gguf_file is None and gguf:
        model_args.gguf_file = gguf
    return "decoder" if is_decoder(path, model_args.gguf_file or gguf) else "encoder"


def prepare(family: str, script_args, model_args, training_args, dd, classes):
    if family == "encoder":
        from llm.encoder import prepare_encoder

        return prepare_encoder(script_args, model_args, training_args, dd, classes)
    try:
        from llm.decoder import prepare_decoder
    except ImportError as e:
        raise FinetuneError(f"the decoder path (llm/decoder.py) is not available in this checkout: {e}") from None
    return prepare_decoder(script_args, model_args, training_args, dd, classes)


# ---------------------------------------------------------------- one run


def resolve_resume(training_args) -> str | None:
    """--resume_from_checkpoint: unset/auto/last/true -> the newest checkpoint if any; no/none/false -> none; else a path."""
    from textualize.training import last_checkpoint

    value = training_args.resume_from_checkpoint
    if isinstance(value, str) and value.lower() in ("no", "none", "false"):
        return None
    if value is None or (isinstance(value, str) and value.lower() in ("auto", "last", "true")) or value is True:
        found = last_checkpoint(training_args.output_dir)
        if found:
            logger.warning("resuming from %s", found)
        return found
    if not Path(value).is_dir():
        raise FinetuneError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    return str(value)


def run_once(script_args, model_args, training_args, dd, classes, run_dir: Path, family: str) -> dict[str, Any]:
    """Train (unless zero-shot), save, predict; returns metrics, timings, description."""
    from transformers import set_seed

    from textualize.training import Stopwatch, build_trainer, write_split_predictions

    sw = Stopwatch()
    training_args.output_dir = str(run_dir)
    set_seed(training_args.seed)
    if script_args.max_train_samples and "train" in dd and script_args.max_train_samples < len(dd["train"]):
        # a seeded random subset, not the first rows: corpora are stored by dialogue or speaker
        dd["train"] = dd["train"].shuffle(seed=training_args.seed).select(range(script_args.max_train_samples))
    if script_args.max_eval_samples:
        for s in dd:
            if s != "train":
                dd[s] = dd[s].select(range(min(script_args.max_eval_samples, len(dd[s]))))
    with sw("prepare"):
        parts = prepare(family, script_args, model_args, training_args, dd, classes)
    describe = dict(parts.describe)
    logger.warning("model: %s", json.dumps(describe, default=str))
    trainable = parts.trainable and "train" in parts.datasets
    if parts.trainable and not trainable:
        raise FinetuneError("the dataset has no 'train' split (needed unless --method zero-shot)")
    if trainable and "validation" not in parts.datasets:
        raise FinetuneError(
            "the dataset has no 'validation' split: model selection and early stopping need one "
            "(or use --folds COLUMN for cross-validation)"
        )
    weighting = script_args.class_weighting if trainable else "none"
    train_labels = dd["train"]["label_id"] if trainable else None
    trainer = build_trainer(
        parts.model,
        training_args,
        parts.datasets.get("train") if trainable else None,
        parts.datasets.get("validation"),
        parts.collator,
        classes,
        train_label_ids=train_labels,
        class_weighting=weighting,
        early_stopping_patience=script_args.early_stopping_patience,
        processing_class=parts.tokenizer,
        compute_metrics=parts.compute_metrics or True,
        **parts.trainer_kwargs,
    )
    training: dict[str, Any] = {}
    if trainable:
        resume = resolve_resume(training_args)
        with sw("train"):
            result = trainer.train(resume_from_checkpoint=resume)
        training = {
            "resumed_from": resume,
            "global_step": trainer.state.global_step,
            "epochs": trainer.state.epoch,
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "best_metric": trainer.state.best_metric,
            "train_loss": result.training_loss,
            "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        }
        with sw("save"):
            trainer.save_model(str(run_dir))
    metrics: dict[str, Any] = {}
    with sw("predict"):
        for split in split_list(script_args.predict_splits):
            if split not in parts.datasets:
                continue
            probs = parts.predict(trainer, split)
            raw = dd[split]
            import numpy as np

            metrics[split] = write_split_predictions(
                run_dir, split, raw["id"], raw["label"], probs, classes, clips=clip_ids(raw),
                aggregate=script_args.aggregate, logits=np.log(np.clip(probs, 1e-12, 1.0)),
            )
            m = metrics[split]["rows"]
            logger.warning("%s: weighted F1 %.4f, macro F1 %.4f, accuracy %.4f (n=%d)",
                           split, m.get("weighted_f1", float("nan")), m.get("macro_f1", float("nan")),
                           m.get("accuracy", float("nan")), m.get("n", 0))
    return {"metrics": metrics, "timings": sw.seconds, "describe": describe, "training": training}


# ---------------------------------------------------------------- main


def configure(script_args, model_args, training_args) -> None:
    """Project defaults that depend on other arguments; checks that fail early and clearly."""
    from llm.args import AGGREGATES, HEADS, METHODS

    if not training_args.output_dir:
        raise FinetuneError("--output_dir is required (the run folder)")
    if script_args.method not in METHODS:
        raise FinetuneError(f"--method must be one of {METHODS}")
    if script_args.head not in HEADS:
        raise FinetuneError(f"--head must be one of {HEADS}")
    if script_args.aggregate not in AGGREGATES:
        raise FinetuneError(f"--aggregate must be one of {AGGREGATES}")
    if script_args.method == "qlora":
        model_args.load_in_4bit = True
    from textualize.training import resolve_class_weighting

    try:
        script_args.class_weighting = resolve_class_weighting(script_args.class_weighting, script_args.selection_metric)
    except ValueError as exc:
        raise FinetuneError(str(exc)) from None
    if training_args.metric_for_best_model in (None, "selection"):
        training_args.metric_for_best_model = f"eval_{script_args.selection_metric}"
        training_args.greater_is_better = True
    import torch

    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # nothing to pin to (avoids a warning per loader)


def main(argv: Sequence[str] | None = None) -> Path:
    from textualize.training import finish_run, parse_args

    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    script_args, model_args, training_args = parse_args(ALL_ARGUMENTS, argv)
    configure(script_args, model_args, training_args)
    run_dir = Path(training_args.output_dir)
    zero_shot = script_args.method == "zero-shot"
    dd, classes = load_dataset_dir(script_args.dataset)
    family = pick_family(script_args, model_args)
    from llm.encoder import EncoderInputError, resolve_future_turns

    try:
        script_args.future_turns = resolve_future_turns(script_args.future_turns, dd, family)
    except EncoderInputError as exc:
        raise FinetuneError(str(exc)) from None
    config = {
        "script": dataclasses.asdict(script_args),
        "model": dataclasses.asdict(model_args),
        "training": training_args.to_dict(),
    }
    column, values = fold_plan(dd, script_args)
    if not column:
        result = run_once(script_args, model_args, training_args, dd, classes, run_dir, family)
        metrics, timings, describe, training = result["metrics"], result["timings"], result["describe"], result["training"]
        folds_info = None
    else:
        metrics, timings, describe, training, folds_info = run_folds(
            script_args, model_args, training_args, dd, classes, run_dir, family, column, values
        )
    if not training_args.process_index == 0:
        return run_dir
    from eval.predictions import dataset_provenance

    prov = dataset_provenance(script_args.dataset)
    finish_run(
        run_dir,
        approach="text",
        model=script_args.model,
        method=script_args.method,
        dataset_dir=script_args.dataset,
        classes=classes,
        seed=training_args.seed,
        metrics=metrics,
        config=config,
        timings=timings,
        family=family,
        head=script_args.head if family == "decoder" else "classification",
        template_id=(prov.get("template") or {}).get("id"),
        modalities=prov.get("modalities"),
        describe=describe,
        training=training,
        folds=folds_info,
        zero_shot=zero_shot,
    )
    logger.warning("run folder: %s", run_dir)
    return run_dir


def run_folds(script_args, model_args, training_args, dd, classes, run_dir, family, column, values):
    """k-fold: one model per held-out value; out-of-fold validation predictions and test
    predictions averaged over the fold models, written at the top of the run folder."""
    import copy

    import numpy as np

    from eval.predictions import read_predictions
    from textualize.training import write_split_predictions

    only = [script_args.fold] if script_args.fold is not None else list(range(len(values)))
    bad = [k for k in only if not 0 <= k < len(values)]
    if bad:
        raise FinetuneError(f"--fold {bad[0]}: there are {len(values)} folds (0..{len(values) - 1}) over '{column}'")
    per_fold, timings, oof, test_probs = [], {}, [], []
    for k in only:
        fold_dir = run_dir / f"fold_{k}"
        args_k = copy.deepcopy(training_args)
        res = run_once(script_args, model_args, args_k, fold_splits(dd, column, values[k]), classes, fold_dir, family)
        per_fold.append({"fold": k, "held_out": values[k], "metrics": res["metrics"], "training": res["training"]})
        for name, sec in res["timings"].items():
            timings[name] = round(timings.get(name, 0.0) + sec, 3)
        oof.append(read_predictions(fold_dir / "predictions" / "validation.jsonl", classes))
        if (fold_dir / "predictions" / "test.jsonl").exists():
            test_probs.append(read_predictions(fold_dir / "predictions" / "test.jsonl", classes))
    metrics: dict[str, Any] = {}
    ids = [i for p in oof for i in p.ids]
    labels = [label for p in oof for label in p.labels]
    probs = np.concatenate([p.probs for p in oof])
    metrics["validation"] = write_split_predictions(run_dir, "validation", ids, labels, probs, classes)
    metrics["validation"]["cross_validated"] = True
    if test_probs:
        mean = np.mean([p.probs for p in test_probs], axis=0)
        metrics["test"] = write_split_predictions(run_dir, "test", test_probs[0].ids, test_probs[0].labels, mean, classes)
        metrics["test"]["fold_ensemble"] = len(test_probs)
    describe = {"folds": len(only)}
    return metrics, timings, describe, {}, {"column": column, "values": [str(v) for v in values], "per_fold": per_fold}


def cli(argv: Sequence[str] | None = None) -> int:
    """Entry point: clear one-line errors for bad input instead of a traceback."""
    from llm.encoder import EncoderInputError
    from llm.models import ModelNameError
    from textualize.models import ModelUnavailableError

    try:
        main(argv)
    except (FinetuneError, EncoderInputError, ModelNameError, ModelUnavailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
