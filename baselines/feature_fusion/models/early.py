"""Early fusion: every stream (with its mask channels) concatenated per frame, one causal TCN,
per-frame logits. On per-clip tables (T = 1) this is a per-clip MLP on the joined vectors."""
from __future__ import annotations

import torch
from torch import nn

from baselines.feature_fusion.layers import TCN
from baselines.feature_fusion.registry import FEATURE_MODELS
from baselines.feature_fusion.spec import FrameModel, StreamModelSpec


class EarlyFusion(FrameModel):
    def __init__(self, layout: dict, n_classes: int, channels, kernel_size=5, dropout=0.3):
        super().__init__(layout)
        dim = sum(self.modality_input_dim(m) for m in self.modalities)
        self.tcn = TCN(dim, channels, kernel_size, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.tcn.out_dim, n_classes)

    def frame_logits(self, feats: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        xs, _ = self.modality_inputs(feats, masks)
        return self.head(self.dropout(self.tcn(torch.cat(xs, dim=-1))))


@FEATURE_MODELS.register("early")
class EarlyFusionSpec(StreamModelSpec):
    method = "early fusion (concatenated streams, one TCN)"

    def make_model(self, layout, n_classes, args) -> EarlyFusion:
        return EarlyFusion(layout, n_classes, args.channels, args.kernel_size, args.dropout)
