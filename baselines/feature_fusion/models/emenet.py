"""EMENet-style multitask CNN-RNN with uncertainty (Deng et al., ABAW 2021, "Iterative
Distillation for Better Uncertainty Estimates in Multitask Emotion Recognition").

Per sampled frame, a MobileFaceNet-sized CNN embeds the 112 x 112 face crop of the main face and,
optionally, a small depthwise-separable CNN embeds the 64 x 64 log-mel patch around the frame; a
GRU runs over the frames; heads predict the expression class (the dataset's classes), action-unit
occurrence (multi-label, when the dataset has AU labels) and valence/arousal (regression with a
CCC loss, when it has them). Every loss is masked where its label is missing, so a dataset with
only expression labels trains only that head (the other heads are not even built). Frames with no
face skip the CNN (their embedding is zero and a mask flag tells the GRU); no audio track masks
the audio branch the same way.

Uncertainty: aleatoric = normalised entropy of each sample's class probabilities
(``eval.calibration.normalized_entropy``); epistemic = the spread of a deep ensemble of models
trained from different seeds (``baselines.feature_fusion.emenet_ensemble``, through
``eval.calibration.ensemble_spread``).

No pretrained face model is available offline (the original initialises MobileFaceNet from a
face-alignment checkpoint; facenet-pytorch's face models are downloaded at run time), so the CNN
trains from scratch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.feature_fusion.registry import FEATURE_MODELS

# ---------------------------------------------------------------- configuration


@dataclass
class EMENetConfig:
    """EMENet's settings (the flags are ``--emenet_<field>``, see :class:`EMENetArguments`)."""

    fps: float = 5.0
    window: int = 16  # frames per training window (3.2 s at 5 fps)
    hop: int = 8
    eval_hop: int = 0  # inference windows' hop; 0 = window // 2
    audio: bool = True  # the audio branch on 64 x 64 log-mel patches
    width: float = 1.0  # MobileFaceNet channel multiplier (1.0 = the original's 64/128 channels)
    embedding: int = 256  # per-frame visual embedding
    audio_embedding: int = 128
    hidden: int = 256  # GRU units
    gru_layers: int = 1
    dropout: float = 0.3
    lambda_au: float = 1.0
    lambda_va: float = 1.0
    cache_dir: str = ""  # default: ~/.cache/textualize/emenet (keyed by media content hash)
    aux_labels: str = ""  # optional side table (id + AU/valence/arousal columns)
    device: str = "cpu"  # face detector device for crop extraction
    crop_margin: float = 1.3

    @classmethod
    def from_args(cls, args: Any) -> "EMENetConfig":
        """From the merged training arguments (``emenet_<field>`` attributes; missing -> default)."""
        if isinstance(args, cls):
            return args
        values = {}
        for f in fields(cls):
            v = getattr(args, f"emenet_{f.name}", None) if args is not None else None
            if v is not None:
                values[f.name] = v
        return cls(**values)


def _arguments_class() -> type:
    """``--emenet_<field>`` flags for train.py (prefixed: ``--window``/``--dropout`` belong to the
    stream models and mean other things there)."""
    from dataclasses import field as dc_field, make_dataclass

    help_text = {
        "fps": "Frames sampled per second of media (face crops and spectrogram patches).",
        "window": "Frames per training window.", "hop": "Hop between training windows (frames).",
        "eval_hop": "Hop of the overlapping inference windows (0 = window // 2).",
        "audio": "Use the audio branch (log-mel 64x64 patches).",
        "width": "MobileFaceNet channel multiplier.", "embedding": "Visual embedding size per frame.",
        "audio_embedding": "Audio embedding size per frame.", "hidden": "GRU units.", "gru_layers": "GRU layers.",
        "dropout": "Dropout before and after the GRU.", "lambda_au": "Weight of the AU loss.",
        "lambda_va": "Weight of the valence/arousal CCC loss.",
        "cache_dir": "Face-crop/spectrogram cache (default ~/.cache/textualize/emenet).",
        "aux_labels": "CSV/JSONL side table: id + AU01.. (0/1) and/or valence, arousal ([-1, 1]) labels.",
        "device": "Face detector device for crop extraction.", "crop_margin": "Crop side / face box side.",
    }
    types = {"float": float, "int": int, "bool": bool, "str": str}
    specs = [(f"emenet_{f.name}", types.get(f.type, f.type), dc_field(default=f.default, metadata={"help": help_text.get(f.name, "")}))
             for f in fields(EMENetConfig)]
    cls = make_dataclass("EMENetArguments", specs)
    cls.__module__ = __name__
    return cls


# ---------------------------------------------------------------- visual CNN (MobileFaceNet)


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.PReLU(cout))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """MobileFaceNet's inverted residual: 1x1 expand, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            ConvBN(cin, expand), ConvBN(expand, expand, 3, stride, groups=expand), ConvBN(expand, cout, act=False)
        )

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileFaceNet(nn.Module):
    """MobileFaceNet (Chen et al. 2018) on 112 x 112 faces with a global depthwise (GDC) head.

    The GDC output normalisation is a LayerNorm instead of BatchNorm1d so that a batch holding a
    single face (short windows, sparse detections) still trains.
    """

    def __init__(self, embedding: int = 256, width: float = 1.0, size: int = 112):
        super().__init__()
        c = lambda n: max(8, int(round(n * width / 8)) * 8)  # noqa: E731
        c64, c128, c256, c512 = c(64), c(128), c(256), c(512)
        blocks: list[nn.Module] = [ConvBN(3, c64, 3, 2), ConvBN(c64, c64, 3, 1, groups=c64)]
        stages = [(c64, c64, c128, 2, 1), (c64, c64, c128, 1, 4), (c64, c128, c256, 2, 1), (c128, c128, c256, 1, 6),
                  (c128, c128, c512, 2, 1), (c128, c128, c256, 1, 2)]
        for cin, cout, exp, stride, n in stages:
            for _ in range(n):
                blocks.append(Bottleneck(cin, cout, exp, stride))
        blocks.append(ConvBN(c128, c512))
        self.features = nn.Sequential(*blocks)
        side = size // 16
        self.gdc = nn.Conv2d(c512, c512, side, groups=c512, bias=True)  # global depthwise conv
        self.proj = nn.Linear(c512, embedding, bias=False)
        self.norm = nn.LayerNorm(embedding)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):  # (N, 3, 112, 112) in [-1, 1]
        x = self.gdc(self.features(x)).flatten(1)
        return self.norm(self.proj(x))


class AudioCNN(nn.Module):
    """A small depthwise-separable CNN on a (1, n_mels, frames) log-mel patch; input BatchNorm
    learns the dB scale instead of a hand-set normalisation."""

    def __init__(self, embedding: int = 128):
        super().__init__()

        def sep(cin, cout, s):
            return nn.Sequential(ConvBN(cin, cin, 3, s, groups=cin), ConvBN(cin, cout))

        self.net = nn.Sequential(
            nn.BatchNorm2d(1), ConvBN(1, 32, 3, 2), sep(32, 64, 2), sep(64, 128, 2), sep(128, 128, 1), sep(128, 256, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, embedding), nn.LayerNorm(embedding),
        )

    def forward(self, x):  # (N, 1, n_mels, frames)
        return self.net(x)


# ---------------------------------------------------------------- the multitask CNN-RNN


def ccc(pred: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Lin's concordance correlation coefficient of two 1-d tensors."""
    mp, mg = pred.mean(), gold.mean()
    vp, vg = pred.var(unbiased=False), gold.var(unbiased=False)
    cov = ((pred - mp) * (gold - mg)).mean()
    return 2 * cov / (vp + vg + (mp - mg) ** 2 + 1e-8)


def masked_losses(out: dict, labels=None, au_target=None, au_mask=None, va_target=None, va_mask=None) -> dict[str, torch.Tensor]:
    """Each head's loss over the frames where its label exists (missing -> no term at all)."""
    losses: dict[str, torch.Tensor] = {}
    if labels is not None:
        logits = out["logits"]
        keep = labels.reshape(-1) != -100
        if keep.any():
            losses["expr"] = F.cross_entropy(logits.reshape(-1, logits.shape[-1])[keep].float(), labels.reshape(-1)[keep])
    if au_target is not None and "au_logits" in out and au_mask is not None and au_mask.any():
        m = au_mask.bool()
        losses["au"] = F.binary_cross_entropy_with_logits(out["au_logits"][m].float(), au_target[m].float())
    if va_target is not None and "va" in out and va_mask is not None:
        terms = []
        for d in range(2):
            m = va_mask[..., d].bool()
            if int(m.sum()) >= 2:
                terms.append(1.0 - ccc(out["va"][..., d][m].float(), va_target[..., d][m].float()))
        if terms:
            losses["va"] = torch.stack(terms).mean()
    return losses


class EMENet(nn.Module):
    """Frames -> (visual CNN [+ audio CNN]) -> GRU -> expression / AU / valence-arousal heads.

    ``forward`` returns per-frame ``logits`` (B, T, classes). In training it also returns
    ``aux_loss`` (the AU and VA terms, for the shared loop's class-weighted expression loss) and
    ``loss`` (all terms, for unweighted training); in evaluation it returns ``au_logits`` and
    ``va`` per frame instead.
    """

    def __init__(self, n_classes: int, au_names: Sequence[str] = (), use_va: bool = False, config: EMENetConfig = EMENetConfig()):
        super().__init__()
        self.config = config
        self.n_classes = n_classes
        self.au_names = list(au_names)
        self.use_va = use_va
        self.visual = MobileFaceNet(config.embedding, config.width)
        self.audio = AudioCNN(config.audio_embedding) if config.audio else None
        gru_in = config.embedding + 1 + ((config.audio_embedding + 1) if config.audio else 0)
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(gru_in, config.hidden, num_layers=config.gru_layers, batch_first=True,
                          dropout=config.dropout if config.gru_layers > 1 else 0.0)
        self.expr_head = nn.Linear(config.hidden, n_classes)
        self.au_head = nn.Linear(config.hidden, len(self.au_names)) if self.au_names else None
        self.va_head = nn.Linear(config.hidden, 2) if use_va else None

    def embed(self, faces, face_mask, mels=None, audio_mask=None) -> torch.Tensor:
        B, T = face_mask.shape
        dtype = self.expr_head.weight.dtype
        fm = face_mask.bool()
        v = torch.zeros(B, T, self.config.embedding, device=face_mask.device, dtype=dtype)
        if fm.any():
            x = faces[fm]  # (N, S, S, 3) uint8: only frames with a face reach the CNN
            x = x.permute(0, 3, 1, 2).to(dtype).div(127.5).sub(1.0)
            v[fm] = self.visual(x).to(dtype)
        parts = [v, fm.unsqueeze(-1).to(dtype)]
        if self.audio is not None:
            am = audio_mask.bool() if audio_mask is not None else torch.zeros_like(fm)
            a = torch.zeros(B, T, self.config.audio_embedding, device=face_mask.device, dtype=dtype)
            if mels is not None and am.any():
                a[am] = self.audio(mels[am].unsqueeze(1).to(dtype)).to(dtype)
            parts += [a, am.unsqueeze(-1).to(dtype)]
        return torch.cat(parts, dim=-1)

    def forward(self, faces, face_mask, mels=None, audio_mask=None, frame_mask=None, labels=None,
                au_target=None, au_mask=None, va_target=None, va_mask=None):
        h, _ = self.gru(self.drop(self.embed(faces, face_mask, mels, audio_mask)))
        h = self.drop(h)
        out: dict[str, torch.Tensor] = {"logits": self.expr_head(h)}
        heads = {}
        if self.au_head is not None:
            heads["au_logits"] = self.au_head(h)
        if self.va_head is not None:
            heads["va"] = torch.tanh(self.va_head(h))
        losses = masked_losses({**out, **heads}, labels, au_target, au_mask, va_target, va_mask)
        aux = h.new_zeros(())
        if "au" in losses:
            aux = aux + self.config.lambda_au * losses["au"]
        if "va" in losses:
            aux = aux + self.config.lambda_va * losses["va"]
        if labels is not None or au_target is not None or va_target is not None:
            out["loss"] = losses.get("expr", h.new_zeros(()) + 0.0 * out["logits"].sum()) + aux
        if self.training:
            out["aux_loss"] = aux
        else:
            out.update(heads)
        return out


# ---------------------------------------------------------------- parameters and FLOPs


def count_parameters(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def flops_per_input(model: EMENet, with_audio: bool | None = None, frames: int = 1) -> dict[str, int]:
    """FLOPs of one forward pass on ``frames`` frames (1 = one 112 x 112 face [+ one 64 x 64
    spectrogram], the original's unit), counted by ``torch.utils.flop_counter.FlopCounterMode``
    (2 FLOPs per multiply-add). ``macs`` = FLOPs / 2, the multiply-add count that papers quoting
    thop/ptflops (as the original's 228 M / 234 M appear to: MobileFaceNet alone is 221 M MAdds)
    report as "FLOPs"."""
    from torch.utils.flop_counter import FlopCounterMode

    with_audio = model.audio is not None if with_audio is None else with_audio
    dev = model.expr_head.weight.device
    batch = {
        "faces": torch.zeros(1, frames, 112, 112, 3, dtype=torch.uint8, device=dev),
        "face_mask": torch.ones(1, frames, dtype=torch.bool, device=dev),
    }
    if with_audio:
        batch["mels"] = torch.zeros(1, frames, 64, 64, device=dev)
        batch["audio_mask"] = torch.ones(1, frames, dtype=torch.bool, device=dev)
    was = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(**batch)
        total = int(counter.get_total_flops())
        by_module = {k: int(sum(v.values())) for k, v in counter.get_flop_counts().items()}
    finally:
        model.train(was)
    return {"flops": total, "macs": total // 2, "frames": frames, "by_module": by_module}


# ---------------------------------------------------------------- the registered model


@FEATURE_MODELS.register("emenet")
class EMENetSpec:
    """``--model emenet``: face crops and log-mel patches from the dataset's media (cached),
    multitask heads, masked losses, per-frame logits averaged over overlapping windows."""

    args_class = _arguments_class()

    def __init__(self) -> None:
        self.aux = None
        self.stats: dict[str, Any] = {}

    def datasets(self, dataset_dir, args, classes) -> dict:
        from baselines.feature_fusion.emenet_data import CropConfig, EMENetWindows, MediaCache, load_split_samples
        from textualize.demo import cache_root

        cfg = EMENetConfig.from_args(args)
        crop = CropConfig(fps=float(cfg.fps), margin=float(cfg.crop_margin))
        cache = MediaCache(cfg.cache_dir or cache_root() / "emenet", crop, device=cfg.device)
        samples, aux, stats = load_split_samples(dataset_dir, classes, cache, cfg.aux_labels or None)
        split_ids = getattr(args, "split_ids", None)
        if split_ids is not None:  # k-fold: the folds' ids over the pooled samples
            pool = {s.id: s for ss in samples.values() for s in ss}
            missing = [i for ids in split_ids.values() for i in ids if i not in pool]
            if missing:
                raise ValueError(f"{len(missing)} fold ids are not samples of {dataset_dir} (first: {missing[:3]})")
            samples = {name: [pool[i] for i in ids] for name, ids in split_ids.items()}
        self.aux, self.stats = aux, stats
        train = samples.get("train", [])
        # a head exists only for a task with at least one training label
        au_names = aux.au_names if any(s.au is not None and np.isfinite(s.au).any() for s in train) else []
        use_va = any(s.va is not None and np.isfinite(s.va).any() for s in train)
        self.stats.update(au_names=list(au_names), va=use_va)
        return {
            name: EMENetWindows(ss, crop, cfg.window, cfg.hop, train=(name == "train"), au_names=au_names,
                                use_va=use_va, eval_hop=cfg.eval_hop)
            for name, ss in samples.items()
        }

    def collator(self, args):
        from baselines.feature_fusion.emenet_data import collate

        return collate

    def build(self, args, classes, train_datasets) -> "EMENet":
        cfg = EMENetConfig.from_args(args)
        ds = train_datasets.get("train") if isinstance(train_datasets, dict) else train_datasets
        return EMENet(len(classes), list(getattr(ds, "au_names", []) or []), bool(getattr(ds, "use_va", False)), cfg)

    def predict(self, trainer, split_dataset, args) -> dict:
        """Per-frame logits averaged over overlapping windows (``trainer.predict``), then per
        sample by ``--aggregate`` over the frames with any input."""
        view = split_dataset.for_prediction()
        out = trainer.predict(view)
        preds = out.predictions if isinstance(out.predictions, tuple) else (out.predictions,)
        return aggregate_windows(view, preds, getattr(args, "aggregate", "mean_probs") or "mean_probs")

    def describe(self, model: "EMENet", args) -> dict:
        cfg = model.config
        fl_v = flops_per_input(model, with_audio=False)
        fl_av = flops_per_input(model, with_audio=True) if model.audio is not None else None
        params = {
            "total": count_parameters(model), "visual_cnn": count_parameters(model.visual),
            "audio_cnn": count_parameters(model.audio), "gru": count_parameters(model.gru),
            "heads": count_parameters(model.expr_head) + count_parameters(model.au_head) + count_parameters(model.va_head),
        }
        # the same network without the audio branch (its CNN and its GRU input columns)
        params["visual_only"] = params["total"] - params["audio_cnn"] - (
            (cfg.audio_embedding + 1) * 3 * cfg.hidden if model.audio is not None else 0)
        flops = {"visual": {"flops": fl_v["flops"], "macs": fl_v["macs"], "input": "one 112x112 RGB face"}}
        if fl_av:
            flops["audio_visual"] = {"flops": fl_av["flops"], "macs": fl_av["macs"],
                                     "input": "one 112x112 RGB face + one 64x64 log-mel patch"}
        top = fl_av or fl_v
        flops["by_component"] = {k.split(".", 1)[1]: v for k, v in top["by_module"].items() if k.count(".") == 1}
        flops["counter"] = "torch.utils.flop_counter.FlopCounterMode; FLOPs = 2 x multiply-adds (macs)"
        return {
            "method": "emenet-va" if model.audio is not None else "emenet-v",
            "parameters": params,
            "flops_per_input": flops,
            "original": {"EMENet-V": {"parameters": 1.68e6, "flops": 228e6}, "EMENet-VA": {"parameters": 1.91e6, "flops": 234e6},
                         "note": "the original's FLOPs are multiply-adds (MobileFaceNet alone: 221 M MAdds)"},
            "streams": ["face crops 112x112 (MTCNN + main-face tracker)"] + (["log-mel 64x64 patches"] if model.audio is not None else []),
            "heads": {"expression": model.n_classes, "au": model.au_names, "valence_arousal": model.use_va},
            "config": asdict(cfg),
            "data": self.stats,
            "pretrained": "none: no offline face model fits, the CNNs train from scratch",
        }


def aggregate_windows(view, preds: Sequence[np.ndarray], aggregate: str = "mean_probs") -> dict:
    """Window outputs (n_windows, T, ...) -> frames (mean over the windows covering each frame)
    -> samples over the frames with any input: ``mean_probs`` (mean of frame softmax),
    ``mean_logits`` (softmax of the mean logits) or ``vote`` (share of frames per arg max).
    A sample with no input at all uses every frame and says so (``missing_inputs``)."""
    from scipy.special import expit, softmax

    from eval.calibration import normalized_entropy

    names = ["logits"] + (["au_logits"] if view.au_names else []) + (["va"] if view.use_va else [])
    by_name = {n: np.asarray(p, np.float64) for n, p in zip(names, preds)}
    sums: list[dict[str, np.ndarray]] = [
        {name: np.zeros((len(s.frames), arr.shape[-1])) for name, arr in by_name.items()} for s in view.samples
    ]
    counts = [np.zeros(len(s.frames)) for s in view.samples]
    for w, (k, a) in enumerate(view.index):
        n = min(view.window, len(view.samples[k].frames) - a)
        for name, arr in by_name.items():
            sums[k][name][a : a + n] += arr[w, :n]
        counts[k][a : a + n] += 1
    ids, labels, probs, logits, extra = [], [], [], [], []
    for k, s in enumerate(view.samples):
        frame = {name: v / np.maximum(counts[k], 1)[:, None] for name, v in sums[k].items()}
        has_input = s.face_mask | s.has_audio
        use = has_input if has_input.any() else np.ones(len(s.frames), bool)
        fl = frame["logits"][use]
        if aggregate == "mean_logits":
            lg = fl.mean(axis=0)
            p = softmax(lg)
        elif aggregate == "vote":
            p = np.bincount(fl.argmax(axis=1), minlength=fl.shape[1]) / len(fl)
            lg = np.log(np.clip(p, 1e-12, 1.0))
        elif aggregate == "mean_probs":
            p = softmax(fl, axis=1).mean(axis=0)
            lg = np.log(np.clip(p, 1e-12, 1.0))
        else:
            raise ValueError(f"unknown aggregate {aggregate!r}")
        row: dict[str, Any] = {
            "entropy": round(float(normalized_entropy(p[None])[0]), 6),
            "frames": int(len(s.frames)), "face_frames": int(s.face_mask.sum()), "audio": bool(s.has_audio),
        }
        if not has_input.any():
            row["missing_inputs"] = ["face", "audio"]
        if "au_logits" in frame and s.face_mask.any():
            au = expit(frame["au_logits"][s.face_mask]).mean(axis=0)
            row["au_probs"] = {n: round(float(v), 4) for n, v in zip(view.au_names, au)}
        if "va" in frame:
            va = frame["va"][use].mean(axis=0)
            row["valence"], row["arousal"] = round(float(va[0]), 4), round(float(va[1]), 4)
        ids.append(s.id)
        labels.append(s.label)
        probs.append(p)
        logits.append(lg)
        extra.append(row)
    return {"ids": ids, "labels": labels, "probs": np.asarray(probs), "logits": np.asarray(logits), "extra": extra}
