"""Arguments of ``baselines/feature_fusion/train.py`` (dataclasses; ``--config run.yaml`` works).

Three groups are parsed together by ``textualize.training.parse_args``:
:class:`FeatureArguments` (data, windows, fusion sizes, k-fold), :class:`FeatureTrainingArguments`
(transformers' ``TrainingArguments`` with defaults for small feature models: evaluation and
checkpoints every epoch, best model by validation weighted F1, no hub, no tqdm), and a model's own
``args_class`` when its spec defines one (field names must not clash with the other two).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from transformers import TrainingArguments

from textualize.training import SelectsOnlyWhenEvaluating

AGGREGATES = ("vote", "mean_probs", "mean_logits")


@dataclass
class FeatureArguments:
    dataset: str = field(metadata={"help": "A dataset folder built by `textualize build-dataset` (+ `textualize build-streams`)."})
    model: str = field(metadata={"help": "Feature model: lfan, early, late, pooled, emenet (registry names; see baselines/feature_fusion/models/)."})
    streams: str = field(default="", metadata={"help": "Comma-separated stream names to use; empty = every stream in DATASET/streams."})
    window: int = field(default=300, metadata={"help": "Training window length in frames of the common axis."})
    hop: int = field(default=200, metadata={"help": "Hop between training windows (frames)."})
    eval_hop: Optional[int] = field(default=None, metadata={"help": "Hop of the overlapping inference windows (default: hop)."})
    aggregate: str = field(default="mean_probs", metadata={"help": f"Frames -> sample (and rows -> clip) decision: {', '.join(AGGREGATES)}."})
    standardize: bool = field(default=True, metadata={"help": "z-score each stream dimension with training-split statistics (masked frames excluded)."})
    class_weighting: str = field(default="balanced", metadata={"help": "balanced (weighted loss), sampler, none or auto (none when selecting on weighted F1 or accuracy, balanced on macro F1 or UAR; the text trainer's default). The feature figures in README were measured with balanced."})
    early_stopping_patience: int = field(default=8, metadata={"help": "Epochs without a better validation score before stopping (0 = off)."})
    # model sizes shared by lfan / early / late
    tcn_channels: str = field(default="64,64", metadata={"help": "TCN channels per level (dilation doubles per level)."})
    kernel_size: int = field(default=5, metadata={"help": "TCN kernel size."})
    dropout: float = field(default=0.3, metadata={"help": "Dropout in the TCNs and heads."})
    modal_dim: int = field(default=32, metadata={"help": "LFAN: per-modality dimension fed to attention."})
    num_heads: int = field(default=2, metadata={"help": "LFAN: heads of the cross-modal attention."})
    leader: str = field(default="", metadata={"help": "LFAN: leader modality or stream name (default: the first stream)."})
    # k-fold cross-validation
    kfold: int = field(default=0, metadata={"help": "k > 1: pool all splits, k folds grouped by --fold_by; each fold is test once."})
    fold_by: str = field(default="speaker", metadata={"help": "Grouping column for k-fold (speaker, cue_clip_id, id)."})
    folds: str = field(default="", metadata={"help": "Comma-separated fold indices to run (default: all)."})
    # uncertainty
    temperature_scaling: bool = field(default=True, metadata={"help": "Fit a temperature on validation and write calibrated probabilities."})
    resume: bool = field(default=True, metadata={"help": "Resume from the newest checkpoint in output_dir when there is one."})

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise SystemExit(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")
        if self.window < 1 or self.hop < 1:
            raise SystemExit("--window and --hop must be >= 1")
        if self.kfold == 1 or self.kfold < 0:
            raise SystemExit("--kfold must be 0 (use the dataset's splits) or >= 2")

    @property
    def stream_list(self) -> list[str]:
        return [s.strip() for s in self.streams.split(",") if s.strip()]

    @property
    def channels(self) -> list[int]:
        return [int(c) for c in self.tcn_channels.split(",") if c.strip()]


@dataclass
class FeatureTrainingArguments(SelectsOnlyWhenEvaluating, TrainingArguments):
    """``TrainingArguments`` with defaults that suit small feature models (all overridable)."""

    output_dir: Optional[str] = field(default=None, metadata={"help": "Run folder (run.json, predictions/, checkpoints)."})
    num_train_epochs: float = field(default=40.0, metadata={"help": "Maximum epochs (early stopping usually ends sooner)."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate."})
    weight_decay: float = field(default=1e-4, metadata={"help": "Weight decay."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Windows per batch."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Windows per evaluation batch."})
    optim: str = field(default="adamw_torch", metadata={"help": "adamw_torch, adam via adamw_torch with --weight_decay 0, sgd, ..."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "linear, cosine, constant, reduce_lr_on_plateau, ..."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Warm-up share of the steps."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate on validation."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to checkpoint (resume needs checkpoints)."})
    save_total_limit: Optional[int] = field(default=2, metadata={"help": "Checkpoints kept (the best is always kept)."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Restore the best validation checkpoint."})
    metric_for_best_model: Optional[str] = field(default="weighted_f1", metadata={"help": "weighted_f1, macro_f1, accuracy, uar."})
    greater_is_better: Optional[bool] = field(default=True, metadata={"help": "Larger selection metric is better."})
    logging_strategy: str = field(default="epoch", metadata={"help": "When to log the training loss."})
    report_to: Optional[str] = field(default="none", metadata={"help": "none, tensorboard, ..."})
    disable_tqdm: Optional[bool] = field(default=True, metadata={"help": "No progress bars (logs stay readable)."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "Data-loading worker processes."})
    seed: int = field(default=42, metadata={"help": "Seed for initialisation, shuffling and windows."})
