"""The bundle every model family hands to ``llm/finetune.py`` (contract between the two paths).

``prepare_encoder`` (``llm/encoder.py``) and ``prepare_decoder`` (``llm/decoder.py``) each
return a :class:`RunParts`; finetune.py then runs the one loop (``textualize.training``) on it,
so training, selection, prediction files and run.json are the same for every model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class RunParts:
    model: Any  # torch.nn.Module (possibly a peft model)
    tokenizer: Any
    datasets: dict[str, Any]  # split -> tokenized dataset ready for the collator
    collator: Callable
    compute_metrics: Callable | None  # for Trainer; None -> textualize.training's default
    predict: Callable[[Any, str], np.ndarray]  # (trainer, split) -> probs (n, n_classes), rows in dataset order
    trainable: bool = True  # False for zero-shot: no training, predict only
    describe: dict = field(default_factory=dict)  # parameter counts, trainable %, quantisation, ...
    trainer_kwargs: dict = field(default_factory=dict)  # extra Trainer arguments (e.g. optimizer_cls_and_kwargs)


def parameter_counts(model) -> dict[str, Any]:
    """Total and trainable parameters (for run.json and the log)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": int(total), "trainable_parameters": int(trainable),
            "trainable_percent": round(100.0 * trainable / max(total, 1), 4)}
