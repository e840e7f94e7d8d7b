"""LFAN: one causal dilated TCN per modality, leader–follower attention fusion, per-frame logits.

The leader modality (``--leader``; default face, else voice, else the first) keeps its own TCN
features; the follower vector is cross-modal multi-head attention over every modality's TCN
output at that frame (``--modal_dim`` 32, ``--num_heads`` 2 by default). Their concatenation
goes to a linear classifier per frame.
"""
from __future__ import annotations

import torch
from torch import nn

from baselines.feature_fusion.layers import TCN, LeaderFollowerAttention
from baselines.feature_fusion.registry import FEATURE_MODELS
from baselines.feature_fusion.spec import FrameModel, StreamModelSpec

LEADER_ORDER = ("face", "voice", "text")


def choose_leader(layout: dict, wanted: str = "") -> str:
    modalities = list(layout["modalities"])
    if wanted:
        for m in modalities:  # a modality name, or the name of one of its streams
            if wanted == m or wanted in layout["modality_streams"][m]:
                return m
        raise SystemExit(f"--leader {wanted!r}: not a modality or stream in use ({', '.join(modalities)})")
    for m in LEADER_ORDER:
        if m in modalities:
            return m
    return modalities[0]


class LFAN(FrameModel):
    def __init__(self, layout: dict, n_classes: int, channels, kernel_size=5, dropout=0.3, modal_dim=32, num_heads=2, leader=""):
        super().__init__(layout)
        self.leader = choose_leader(layout, leader)
        self.leader_index = self.modalities.index(self.leader)
        self.tcns = nn.ModuleDict({m: TCN(self.modality_input_dim(m), channels, kernel_size, dropout) for m in self.modalities})
        self.fusion = LeaderFollowerAttention([self.tcns[m].out_dim for m in self.modalities], modal_dim, num_heads, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.tcns[self.leader].out_dim + modal_dim * len(self.modalities), n_classes)

    def frame_logits(self, feats: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        xs, present = self.modality_inputs(feats, masks)
        hs = [self.tcns[m](x) for m, x in zip(self.modalities, xs)]
        follower = self.fusion(hs, present)
        leader = hs[self.leader_index] * present[..., self.leader_index, None].to(hs[0].dtype)
        return self.head(self.dropout(torch.cat([leader, follower], dim=-1)))


@FEATURE_MODELS.register("lfan")
class LFANSpec(StreamModelSpec):
    method = "LFAN (TCN per modality + leader-follower attention)"

    def make_model(self, layout, n_classes, args) -> LFAN:
        return LFAN(layout, n_classes, args.channels, args.kernel_size, args.dropout, args.modal_dim, args.num_heads, args.leader)
