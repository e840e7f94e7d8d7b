"""Late fusion: one causal TCN + classifier per modality; the frame's logits are the mean of the
classifiers of the modalities present at that frame (a missing modality does not vote)."""
from __future__ import annotations

import torch
from torch import nn

from baselines.feature_fusion.layers import TCN
from baselines.feature_fusion.registry import FEATURE_MODELS
from baselines.feature_fusion.spec import FrameModel, StreamModelSpec


class LateFusion(FrameModel):
    def __init__(self, layout: dict, n_classes: int, channels, kernel_size=5, dropout=0.3):
        super().__init__(layout)
        self.tcns = nn.ModuleDict({m: TCN(self.modality_input_dim(m), channels, kernel_size, dropout) for m in self.modalities})
        self.heads = nn.ModuleDict({m: nn.Linear(self.tcns[m].out_dim, n_classes) for m in self.modalities})
        self.dropout = nn.Dropout(dropout)

    def per_modality_logits(self, feats: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xs, present = self.modality_inputs(feats, masks)
        logits = torch.stack([self.heads[m](self.dropout(self.tcns[m](x))) for m, x in zip(self.modalities, xs)], dim=2)
        return logits, present  # (B, T, M, C), (B, T, M)

    def frame_logits(self, feats: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        logits, present = self.per_modality_logits(feats, masks)
        w = present.to(logits.dtype)[..., None]
        return (logits * w).sum(dim=2) / w.sum(dim=2).clamp(min=1.0)


@FEATURE_MODELS.register("late")
class LateFusionSpec(StreamModelSpec):
    method = "late fusion (per-modality TCN classifiers, mean of present modalities)"

    def make_model(self, layout, n_classes, args) -> LateFusion:
        return LateFusion(layout, n_classes, args.channels, args.kernel_size, args.dropout)
