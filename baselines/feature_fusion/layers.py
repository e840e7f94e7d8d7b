"""Building blocks of the fusion models: causal dilated TCN and leader–follower attention.

The TCN follows Bai et al. (2018) as used by the ABAW LFAN code: per level two weight-normalised
causal convolutions (dilation 2**level), ReLU, dropout, and a residual (1x1 conv when the width
changes). The fusion follows LFAN (Zhang et al., ABAW 2021 / ABAW7): per frame, each modality's
TCN output is projected to ``modal_dim`` queries, keys and values; multi-head attention runs
across the modalities of that frame (missing modalities masked out as keys and zeroed as
outputs), the values are added back, projected and layer-normalised; the leader modality's TCN
output is concatenated with this follower vector before the per-frame classifier.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class CausalConv1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int, dilation: int):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv = weight_norm(nn.Conv1d(cin, cout, kernel_size, dilation=dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        return self.conv(nn.functional.pad(x, (self.pad, 0)))


class TemporalBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            CausalConv1d(cin, cout, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout),
            CausalConv1d(cout, cout, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout),
        )
        self.down = nn.Conv1d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x if self.down is None else self.down(x)
        return torch.relu(self.net(x) + res)


class TCN(nn.Module):
    """Causal dilated TCN on ``(B, T, D)`` -> ``(B, T, channels[-1])``."""

    def __init__(self, input_dim: int, channels: Sequence[int], kernel_size: int = 5, dropout: float = 0.1):
        super().__init__()
        if not channels:
            raise ValueError("a TCN needs at least one level of channels")
        levels, cin = [], input_dim
        for i, cout in enumerate(channels):
            levels.append(TemporalBlock(cin, cout, kernel_size, 2**i, dropout))
            cin = cout
        self.levels = nn.Sequential(*levels)
        self.out_dim = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.levels(x.transpose(1, 2)).transpose(1, 2)


class LeaderFollowerAttention(nn.Module):
    """Cross-modal multi-head attention per frame; returns ``(B, T, modal_dim * M)``."""

    def __init__(self, input_dims: Sequence[int], modal_dim: int = 32, num_heads: int = 2, dropout: float = 0.1):
        super().__init__()
        if modal_dim % num_heads:
            raise ValueError(f"modal_dim {modal_dim} must be a multiple of num_heads {num_heads}")
        self.m, self.d, self.h = len(input_dims), modal_dim, num_heads
        self.qkv = nn.ModuleList(nn.Linear(d, 3 * modal_dim) for d in input_dims)
        self.out = nn.Linear(modal_dim * self.m, modal_dim * self.m)
        self.norm = nn.LayerNorm(modal_dim * self.m)
        self.dropout = nn.Dropout(dropout)
        for lin in (*self.qkv, self.out):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, xs: Sequence[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """``xs``: M tensors ``(B, T, D_m)``; ``present``: ``(B, T, M)`` bool."""
        b, t = present.shape[:2]
        hd = self.d // self.h
        qkv = torch.stack([proj(x) for proj, x in zip(self.qkv, xs)], dim=2)  # (B, T, M, 3d)
        qkv = qkv.view(b, t, self.m, self.h, 3 * hd).permute(0, 1, 3, 2, 4)  # (B, T, H, M, 3hd)
        q, k, v = qkv.float().chunk(3, dim=-1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(hd)  # (B, T, H, M, M)
        key_ok = present[:, :, None, None, :]
        scores = scores.masked_fill(~key_ok, float("-inf"))
        any_key = key_ok.any(dim=-1, keepdim=True)
        attn = torch.softmax(torch.where(any_key, scores, torch.zeros_like(scores)), dim=-1)
        attn = torch.where(any_key & key_ok, attn, torch.zeros_like(attn))
        values = attn @ v + v  # the values are added back, as in LFAN
        values = values * present[:, :, None, :, None]  # a missing modality contributes nothing
        values = values.permute(0, 1, 3, 2, 4).reshape(b, t, self.m * self.d).to(xs[0].dtype)
        return self.norm(self.dropout(self.out(values)))


# ---------------------------------------------------------------- clip-level streams


def without_clip_level(layout: dict) -> dict:
    """``layout`` with its clip-level streams (one vector per sample repeated over the steps, e.g.
    ``audio_functionals``; ``layout["clip_level"]``) left out of the modalities, so a per-frame
    model sees only the time-resolved streams; offsets and mask indices still address the full
    ``feats`` / ``masks`` tensors."""
    clip = set(layout.get("clip_level") or [])
    groups = {m: [s for s in ss if s not in clip] for m, ss in layout["modality_streams"].items()}
    groups = {m: ss for m, ss in groups.items() if ss}
    return {**layout, "modality_streams": groups,
            "modalities": {m: [layout["streams"].index(s) for s in ss] for m, ss in groups.items()}}


def window_mean(feats: torch.Tensor, masks: torch.Tensor, layout: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Each stream's masked mean over the window's frames, ``(B, 1, D)``, and ``(B, 1, S)`` presence.

    For a clip-level stream the present rows of a window are one sample's single vector, so this
    is that vector (a window of length one); a stream absent from the window gives zeros, masked."""
    outs, present = [], []
    for k, s in enumerate(layout["streams"]):
        a, b = layout["offsets"][s]
        m = masks[..., k].to(feats.dtype)
        n = m.sum(dim=1, keepdim=True)
        outs.append((feats[..., a:b] * m[..., None]).sum(dim=1, keepdim=True) / n.clamp(min=1.0)[..., None])
        present.append(n > 0)
    return torch.cat(outs, dim=-1), torch.stack(present, dim=-1)


def clip_level_vector(feats: torch.Tensor, masks: torch.Tensor, layout: dict) -> torch.Tensor:
    """``(B, sum(dim + 1))``: every clip-level stream once per window, then its presence flag."""
    mean, present = window_mean(feats, masks, layout)
    parts = []
    for s in layout.get("clip_level") or []:
        k = layout["streams"].index(s)
        a, b = layout["offsets"][s]
        p = present[:, 0, k : k + 1].to(feats.dtype)
        parts += [mean[:, 0, a:b] * p, p]
    return torch.cat(parts, dim=-1) if parts else feats.new_zeros(feats.shape[0], 0)


def clip_level_dim(layout: dict) -> int:
    return sum(layout["dims"][s] + 1 for s in layout.get("clip_level") or [])
