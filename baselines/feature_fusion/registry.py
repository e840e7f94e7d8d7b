"""Name -> feature model spec (``--model NAME``); each ``models/<name>.py`` registers itself.

A spec is a class with no constructor arguments and these methods (contract shared with the
EMENet helper, see ``train.py``)::

    args_class                                         # optional: a dataclass of the model's own flags
    datasets(dataset_dir, args, classes) -> {split: torch Dataset of dict items}
        # honour args.split_ids ({split: [sample ids]}) when it is not None (k-fold)
    collator(args) -> callable
    build(args, classes, train_datasets) -> torch.nn.Module     # forward(**batch) -> {"logits", ...}
    predict(trainer, split_dataset, args) -> {"ids", "labels", "probs" (n, C), "logits"?, "clips"?, "extra"?}
    describe(model, args) -> dict                      # parameters, FLOPs per input, streams used
"""
from __future__ import annotations

from textualize.registry import Registry

FEATURE_MODELS: Registry = Registry("feature model", ("baselines.feature_fusion.models",))
