"""Pooled fusion: per-modality TCN, masked attentive statistics pooling, concatenation, MLP.

Why: LFAN and early/late fusion classify every frame from a short causal context and average the
frame decisions, which underfits short utterances (EmoDB, 2 s = 10 frames at 5 Hz) where a
logistic regression on whole-utterance functionals does better. This model decides once per
window from whole-window statistics, like the functionals, but learned:

* per modality a causal dilated TCN (``--tcn_channels``, ``--kernel_size``) over its streams'
  values and mask channels; with ``--pool_raw`` (default) the modality's raw values are
  concatenated to the TCN output, so the pooled vector also holds statistics of the inputs;
* attentive statistics pooling (Okabe et al., Interspeech 2018): attention weights from a small
  MLP, softmax over the frames where that modality is present only; the pooled vector is the
  weighted mean and weighted standard deviation (masked frames never count, padding never counts);
  a modality absent from the whole window gives zeros and a 0 presence flag;
* the modalities' pooled vectors (and presence flags) are concatenated, an MLP classifies;
* clip-level streams (one vector per sample, e.g. ``audio_functionals``: the manifest says
  ``clip_level``) skip the TCN and the pooling: the vector and its presence flag go straight into
  the pooled vector (openSMILE's whole-utterance functionals beside the statistics learned from
  the LLD frames). A modality with only clip-level streams has no TCN.

It returns per-frame logits: the window's logits repeated over its frames, so the one training
loop, windowing (one window per clip when the clip fits ``--window``), stitching and clip
aggregation work unchanged. Masked input values are zeroed inside the model, so their content
never matters; the TCN is causal, so trailing padding never reaches a real frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from baselines.feature_fusion.layers import TCN, clip_level_dim, clip_level_vector, without_clip_level
from baselines.feature_fusion.registry import FEATURE_MODELS
from baselines.feature_fusion.spec import FrameModel, StreamModelSpec


@dataclass
class PooledArguments:
    pool_attention: int = field(default=64, metadata={"help": "pooled: hidden units of the attention scorer."})
    pool_mlp: int = field(default=0, metadata={"help": "pooled: hidden units of an MLP classifier; 0 = linear head (chosen on EmoDB validation)."})
    pool_raw: bool = field(default=True, metadata={"help": "pooled: also pool the modality's raw input values (skip)."})


class AttentiveStatsPool(nn.Module):
    """Masked attentive mean + standard deviation over time: ``(B, T, D), (B, T) -> (B, 2D)``."""

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        h32 = h.float()
        scores = self.score(h32).squeeze(-1).masked_fill(~present, float("-inf"))
        any_frame = present.any(dim=1, keepdim=True)
        scores = torch.where(any_frame, scores, torch.zeros_like(scores))  # no frame: no NaN from softmax
        w = torch.softmax(scores, dim=1) * present.to(h32.dtype)  # exact zeros on masked frames
        mean = (w[..., None] * h32).sum(dim=1)
        var = (w[..., None] * (h32 - mean[:, None]) ** 2).sum(dim=1)
        sd = torch.sqrt(var.clamp(min=1e-6))
        out = torch.cat([mean, sd], dim=-1) * any_frame.to(h32.dtype)
        return out.to(h.dtype)


class PooledFusion(FrameModel):
    def __init__(self, layout: dict, n_classes: int, channels, kernel_size=5, dropout=0.3,
                 attention=64, mlp=0, pool_raw=True):
        super().__init__(without_clip_level(layout))  # the per-frame part: time-resolved streams only
        self.full_layout = layout
        self.pool_raw = pool_raw
        self.tcns = nn.ModuleDict({m: TCN(self.modality_input_dim(m), channels, kernel_size, dropout) for m in self.modalities})
        dims = {m: self.tcns[m].out_dim + (self.modality_input_dim(m) if pool_raw else 0) for m in self.modalities}
        self.pools = nn.ModuleDict({m: AttentiveStatsPool(dims[m], attention) for m in self.modalities})
        fused = sum(2 * d + 1 for d in dims.values())  # mean, sd, presence flag per modality
        fused += clip_level_dim(layout)  # clip-level vectors and their presence flags, as they are
        if fused == 0:
            raise ValueError("pooled fusion needs at least one stream")
        self.norm = nn.LayerNorm(fused)
        head: list[nn.Module] = [nn.Dropout(dropout)]
        if mlp > 0:
            head += [nn.Linear(fused, mlp), nn.ReLU(), nn.Dropout(dropout), nn.Linear(mlp, n_classes)]
        else:
            head += [nn.Linear(fused, n_classes)]
        self.head = nn.Sequential(*head)

    def clip_logits(self, feats: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``(B, C)``: one decision per window from its present frames."""
        xs, present = self.modality_inputs(feats, masks) if self.modalities else ([], None)
        pooled = []
        for k, (m, x) in enumerate(zip(self.modalities, xs)):
            p = present[..., k]
            x = x * p[..., None].to(x.dtype)  # a masked frame's values never enter the model
            h = self.tcns[m](x)
            if self.pool_raw:
                h = torch.cat([h, x], dim=-1)
            pooled += [self.pools[m](h, p), p.any(dim=1, keepdim=True).to(h.dtype)]
        if self.full_layout.get("clip_level"):
            pooled.append(clip_level_vector(feats, masks, self.full_layout))
        return self.head(self.norm(torch.cat(pooled, dim=-1)))

    def frame_logits(self, feats: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        logits = self.clip_logits(feats, masks)
        return logits[:, None, :].expand(-1, feats.shape[1], -1)


@FEATURE_MODELS.register("pooled")
class PooledFusionSpec(StreamModelSpec):
    method = "pooled fusion (TCN per modality + masked attentive statistics pooling, concatenated, MLP)"
    args_class = PooledArguments

    def make_model(self, layout, n_classes, args) -> PooledFusion:
        return PooledFusion(layout, n_classes, args.channels, args.kernel_size, args.dropout,
                            args.pool_attention, args.pool_mlp, args.pool_raw)
