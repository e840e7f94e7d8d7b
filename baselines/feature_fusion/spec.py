"""What lfan, early and late share: streams in, windows for training, stitched inference out.

A subclass only says how to build its ``nn.Module`` from the stream layout (:meth:`make_model`).
The module's ``forward(feats, masks, labels=None)`` returns per-frame ``logits`` ``(B, T, C)``
(and ``loss`` with labels: cross-entropy over labelled frames; ``Trainer`` replaces it with the
class-weighted one under ``--class_weighting balanced``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from baselines.feature_fusion.data import (
    IGNORE, StreamData, WindowDataset, collate, frame_presence, load_stream_data, sample_decisions, stitch,
)


class FrameModel(nn.Module):
    """Base of the per-frame fusion models: splits ``feats``/``masks`` into modality inputs."""

    def __init__(self, layout: dict[str, Any]):
        super().__init__()
        self.layout = layout
        self.modalities = list(layout["modalities"])
        self._slices = {
            m: ([layout["offsets"][s] for s in layout["modality_streams"][m]], layout["modalities"][m])
            for m in self.modalities
        }

    def modality_input_dim(self, m: str) -> int:
        spans, idx = self._slices[m]
        return sum(b - a for a, b in spans) + len(idx)

    def modality_inputs(self, feats: torch.Tensor, masks: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per modality: its streams' values with their masks as channels; and ``present (B, T, M)``."""
        xs, present = [], []
        for m in self.modalities:
            spans, idx = self._slices[m]
            mk = masks[..., idx]
            xs.append(torch.cat([feats[..., a:b] for a, b in spans] + [mk.to(feats.dtype)], dim=-1))
            present.append(mk.any(dim=-1))
        return xs, torch.stack(present, dim=-1)

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE)

    def frame_logits(self, feats: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, feats: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.frame_logits(feats, masks)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = self.loss(logits, labels)
        return out


class StreamModelSpec:
    """The registry contract (see ``registry.py``) for models on ``DATASET/streams``."""

    method = "frame fusion"

    def __init__(self) -> None:
        self.data: StreamData | None = None
        self.classes: list[str] = []

    # -- data
    def datasets(self, dataset_dir, args, classes: Sequence[str]) -> dict[str, WindowDataset]:
        self.classes = list(classes)
        self.data = load_stream_data(dataset_dir, classes, args.stream_list, args.split_ids, args.standardize)
        eval_hop = args.eval_hop or args.hop
        out = {}
        for split, samples in self.data.splits.items():
            train = split == "train"
            out[split] = WindowDataset(self.data, samples, args.window, args.hop if train else eval_hop, train=train)
        return out

    def collator(self, args) -> Callable:
        return collate

    # -- model
    def build(self, args, classes: Sequence[str], train_datasets) -> nn.Module:
        assert self.data is not None, "datasets() first"
        return self.make_model(self.data.layout(), len(classes), args)

    def make_model(self, layout: dict[str, Any], n_classes: int, args) -> FrameModel:
        raise NotImplementedError

    # -- evaluation
    def compute_metrics(self, args, classes: Sequence[str], eval_dataset: WindowDataset) -> Callable:
        """Validation score on sample decisions (stitched windows, ``--aggregate``), as reported."""
        from eval.metrics import classification_metrics, summary

        def compute(eval_pred) -> dict[str, float]:
            logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
            probs, _, _ = sample_decisions(eval_dataset, stitch(eval_dataset, logits), args.aggregate)
            y = [smp.label for smp in eval_dataset.samples]
            return summary(classification_metrics(y, probs.argmax(axis=1), classes, probs=probs))

        return compute

    def predict(self, trainer, split_dataset: WindowDataset, args) -> dict[str, Any]:
        ds = split_dataset.for_inference(args.eval_hop or args.hop)
        scorer, trainer.compute_metrics = trainer.compute_metrics, None  # bound to the validation windows
        try:
            out = trainer.predict(ds)
        finally:
            trainer.compute_metrics = scorer
        logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
        frame_logits = stitch(ds, logits)
        probs, sample_logits, empty = sample_decisions(ds, frame_logits, args.aggregate)
        empty_set = set(empty)
        extra = []
        for k, smp in enumerate(ds.samples):
            present = frame_presence(smp, ds.data.streams)
            row = {"frames": smp.length, "frames_with_data": int(present.sum())}
            if k in empty_set:
                row["no_stream_data"] = True
            extra.append(row)
        return {
            "ids": [s.id for s in ds.samples],
            "labels": [self.classes[s.label] for s in ds.samples],
            "probs": probs,
            "logits": sample_logits,
            "clips": [s.clip for s in ds.samples],
            "extra": extra,
        }

    def describe(self, model: nn.Module, args) -> dict[str, Any]:
        """Parameters, FLOPs of one window (batch 1) and per frame, streams used."""
        from torch.utils.flop_counter import FlopCounterMode

        assert self.data is not None
        lengths = [s.length for s in self.data.splits.get("train", [])] or [args.window]
        t = int(min(args.window, max(lengths)))
        dev = next(model.parameters()).device
        feats = torch.zeros(1, t, self.data.input_dim, device=dev)
        masks = torch.ones(1, t, len(self.data.streams), dtype=torch.bool, device=dev)
        was_training = model.training
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(feats=feats, masks=masks)
        model.train(was_training)
        flops = int(fc.get_total_flops())
        m = self.data.manifest
        return {
            "method": self.method,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "flops_per_window": flops, "window_frames": t, "flops_per_frame": flops / t,
            "streams": list(self.data.streams), "modalities": self.data.modalities,
            "streams_manifest": {
                "rate_hz": m.get("rate_hz"), "speaker_normalisation": m.get("speaker_normalisation"),
                "streams": {s: {k: v for k, v in m["streams"][s].items() if k != "names"} for s in self.data.streams},
                "dataset_manifest_sha256": m.get("dataset_manifest_sha256"),
            },
            "data_report": self.data.report,
        }
