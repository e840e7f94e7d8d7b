"""Early fusion: every stream (with its mask channels) concatenated per frame, one causal TCN,
per-frame logits. On per-clip tables (T = 1) this is a per-clip MLP on the joined vectors.

When every selected stream is clip-level (one vector per sample repeated over its steps, e.g.
``audio_functionals``; the manifest says ``clip_level``), a window is first reduced to that
vector — a window of length one — so the same TCN is a per-clip MLP (residual, dropout) on the
concatenated per-clip vectors and their mask flags: early fusion over per-clip vectors. With
time-resolved streams beside them, the clip-level vector is simply part of every frame's input.
"""
from __future__ import annotations

import torch
from torch import nn

from baselines.feature_fusion.layers import TCN, window_mean
from baselines.feature_fusion.registry import FEATURE_MODELS
from baselines.feature_fusion.spec import FrameModel, StreamModelSpec


class EarlyFusion(FrameModel):
    def __init__(self, layout: dict, n_classes: int, channels, kernel_size=5, dropout=0.3):
        super().__init__(layout)
        clip = set(layout.get("clip_level") or [])
        self.per_clip = bool(clip) and clip >= set(layout["streams"])  # only clip-level vectors
        dim = sum(self.modality_input_dim(m) for m in self.modalities)
        self.tcn = TCN(dim, channels, kernel_size, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.tcn.out_dim, n_classes)

    def frame_logits(self, feats: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        if self.per_clip:
            t = feats.shape[1]
            feats, masks = window_mean(feats, masks, self.layout)  # (B, 1, D): the window's vectors
        xs, _ = self.modality_inputs(feats, masks)
        logits = self.head(self.dropout(self.tcn(torch.cat(xs, dim=-1))))
        return logits.expand(-1, t, -1) if self.per_clip else logits


@FEATURE_MODELS.register("early")
class EarlyFusionSpec(StreamModelSpec):
    method = "early fusion (concatenated streams, one TCN)"

    def make_model(self, layout, n_classes, args) -> EarlyFusion:
        return EarlyFusion(layout, n_classes, args.channels, args.kernel_size, args.dropout)
