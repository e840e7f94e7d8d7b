"""Aligned streams (``DATASET/streams/``, docs/streams_format.md) as window datasets for the fusion models.

A sample is ``T`` frames of every selected stream on one time axis, each with its mask. Streams
of one modality (``face``, ``voice``, ``text``) are grouped: a model sees per modality the
concatenated values and their masks (as extra input channels, so a masked frame is never a zero
passed off as data). A frame where no selected stream has data carries no label (``-100``): it
is neither trained on nor counted in a decision. Non-finite values in a stream are masked and
counted in :attr:`StreamData.report`.

Training items are windows (``--window``, ``--hop``); inference windows overlap with
``--eval_hop`` and their per-frame logits are averaged per frame (:func:`stitch`), then frames
become one decision per sample through ``eval.aggregate``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger("feature_fusion")
SPLITS = ("train", "validation", "test")
IGNORE = -100


class StreamsMissingError(SystemExit):
    """A dataset without usable streams: the message says which command makes them."""


def read_streams_manifest(dataset_dir: str | Path) -> dict[str, Any]:
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / "streams" / "manifest.json"
    if not (dataset_dir / "manifest.json").exists():
        raise StreamsMissingError(f"{dataset_dir}: not a built dataset (no manifest.json); run `textualize build-dataset` first")
    if not path.exists():
        raise StreamsMissingError(
            f"{dataset_dir} has no aligned feature streams ({path} is missing); "
            f"run `textualize build-streams {dataset_dir}` first"
        )
    info = json.loads(path.read_text(encoding="utf-8"))
    if not str(info.get("format", "")).startswith("textualize.streams/"):
        raise StreamsMissingError(f"{path}: not a textualize streams manifest (format {info.get('format')!r})")
    if not info.get("streams"):
        raise StreamsMissingError(f"{path}: no streams were built; rerun `textualize build-streams {dataset_dir}` with --streams")
    return info


@dataclass
class Sample:
    id: str
    label: int
    clip: str
    values: dict[str, np.ndarray]  # stream -> (T, dim) float32
    masks: dict[str, np.ndarray]  # stream -> (T,) bool

    @property
    def length(self) -> int:
        return len(next(iter(self.masks.values())))


@dataclass
class StreamData:
    """Every sample of the selected streams, grouped by split (or by the k-fold ``split_ids``)."""

    streams: list[str]
    dims: dict[str, int]
    modality_of: dict[str, str]
    manifest: dict[str, Any]
    splits: dict[str, list[Sample]]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        out: list[str] = []
        for s in self.streams:
            if self.modality_of[s] not in out:
                out.append(self.modality_of[s])
        return out

    def modality_streams(self, modality: str) -> list[str]:
        return [s for s in self.streams if self.modality_of[s] == modality]

    @property
    def input_dim(self) -> int:
        return sum(self.dims[s] for s in self.streams)

    def layout(self) -> dict[str, Any]:
        """Where each stream sits in the collated ``feats`` / ``masks`` tensors (for the models)."""
        offsets, k = {}, 0
        for s in self.streams:
            offsets[s] = (k, k + self.dims[s])
            k += self.dims[s]
        return {
            "streams": list(self.streams), "dims": dict(self.dims), "offsets": offsets,
            "modalities": {m: [self.streams.index(s) for s in self.modality_streams(m)] for m in self.modalities},
            "modality_streams": {m: self.modality_streams(m) for m in self.modalities},
            # one vector per sample repeated over its steps (e.g. audio_functionals): models may take it once per window
            "clip_level": [s for s in self.streams if ((self.manifest.get("streams") or {}).get(s) or {}).get("clip_level")],
        }


def load_stream_data(
    dataset_dir: str | Path,
    classes: Sequence[str],
    streams: Sequence[str] = (),
    split_ids: dict[str, list[str]] | None = None,
    standardize: bool = True,
) -> StreamData:
    """Read the streams of every sample of the DatasetDict; errors name the sample and the fix."""
    from datasets import load_from_disk

    dataset_dir = Path(dataset_dir)
    manifest = read_streams_manifest(dataset_dir)
    available = list(manifest["streams"])
    chosen = list(streams) or available
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise SystemExit(f"--streams {','.join(unknown)}: not in {dataset_dir}/streams (has: {', '.join(available)})")
    dims = {s: int(manifest["streams"][s]["dim"]) for s in chosen}
    modality_of = {s: str(manifest["streams"][s].get("modality") or s) for s in chosen}
    dd = load_from_disk(str(dataset_dir))
    index = {c: i for i, c in enumerate(classes)}
    by_id: dict[str, Sample] = {}
    origin: dict[str, str] = {}
    report: dict[str, Any] = {"nonfinite_values": {}, "samples_without_data": [], "stream_coverage": {}}
    for split, ds in dd.items():
        path = dataset_dir / "streams" / f"{split}.npz"
        if not path.exists():
            raise StreamsMissingError(f"{path} is missing; rerun `textualize build-streams {dataset_dir}`")
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            clips = ds["cue_clip_id"] if "cue_clip_id" in ds.column_names else [""] * len(ds)
            for sid, label, clip in zip(ds["id"], ds["label"], clips):
                values, masks = {}, {}
                for s in chosen:
                    vk, mk = f"{sid}/{s}", f"{sid}/{s}_mask"
                    if vk not in keys or mk not in keys:
                        raise StreamsMissingError(
                            f"sample {sid!r} ({split}) has no {s!r} arrays in {path}; the streams are older than the "
                            f"dataset: rerun `textualize build-streams {dataset_dir} --force`"
                        )
                    v = np.asarray(npz[vk], dtype=np.float32).reshape(-1, dims[s])
                    m = np.asarray(npz[mk], dtype=bool).reshape(-1)
                    if len(v) != len(m):
                        raise StreamsMissingError(f"sample {sid!r}: {s} has {len(v)} frames but its mask {len(m)}")
                    bad = ~np.isfinite(v).all(axis=1) & m
                    if bad.any():  # reported and masked, never fed to a model
                        report["nonfinite_values"].setdefault(s, []).append({"id": sid, "frames": int(bad.sum())})
                        m = m & ~bad
                    v = np.where(np.isfinite(v) & m[:, None], v, 0.0).astype(np.float32)
                    values[s], masks[s] = v, m
                lengths = {len(m) for m in masks.values()}
                if len(lengths) != 1:
                    raise StreamsMissingError(f"sample {sid!r}: streams have different lengths {sorted(lengths)} on one axis")
                if label not in index:
                    raise SystemExit(f"sample {sid!r}: label {label!r} is not one of the classes {list(classes)}")
                smp = Sample(sid, index[label], clip or sid, values, masks)
                if not any(m.any() for m in masks.values()):
                    report["samples_without_data"].append(sid)
                by_id[sid] = smp
                origin[sid] = split
    for s, items in report["nonfinite_values"].items():
        log.warning("stream %s: non-finite values in %d samples were masked (first: %s)", s, len(items), items[0]["id"])
    if report["samples_without_data"]:
        log.warning("%d samples have no data in any selected stream (predicted from the masks alone; first: %s)",
                    len(report["samples_without_data"]), report["samples_without_data"][0])
    if split_ids is None:
        split_ids = {}
        for sid, split in origin.items():
            split_ids.setdefault(split, []).append(sid)
    missing = [i for ids in split_ids.values() for i in ids if i not in by_id]
    if missing:
        raise SystemExit(f"{len(missing)} sample ids of the split plan are not in the dataset (first: {missing[:3]})")
    splits = {split: [by_id[i] for i in ids] for split, ids in split_ids.items() if ids}
    for s in chosen:
        frames = sum(len(x.masks[s]) for ids in splits.values() for x in ids)
        present = sum(int(x.masks[s].sum()) for ids in splits.values() for x in ids)
        report["stream_coverage"][s] = round(present / max(frames, 1), 4)
    data = StreamData(chosen, dims, modality_of, manifest, splits, report)
    if standardize and "train" in splits:
        standardize_streams(data)
    return data


def standardize_streams(data: StreamData) -> None:
    """z-score each dimension with the training samples' present frames (no labels used)."""
    stats = {}
    for s in data.streams:
        rows = [x.values[s][x.masks[s]] for x in data.splits["train"] if x.masks[s].any()]
        if not rows:
            continue
        allv = np.concatenate(rows).astype(np.float64)
        mu, sd = allv.mean(axis=0), allv.std(axis=0)
        sd = np.where(sd < 1e-6, 1.0, sd)
        stats[s] = (mu.astype(np.float32), sd.astype(np.float32))
    for samples in data.splits.values():
        for x in samples:
            for s, (mu, sd) in stats.items():
                m = x.masks[s]
                x.values[s] = np.where(m[:, None], (x.values[s] - mu) / sd, 0.0).astype(np.float32)
    data.report["standardized"] = sorted(stats)


def window_starts(length: int, window: int, hop: int) -> list[int]:
    """Starts of windows covering ``[0, length)``: every ``hop`` frames, plus one ending at the end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, hop))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


class WindowDataset:
    """``torch.utils.data.Dataset`` of windows (dict items) over a list of samples.

    ``train=True``: training windows (``hop``), windows without any present frame are left out
    (they carry no label); ``train=False``: overlapping inference windows (``eval_hop``) covering
    every frame of every sample, in sample order, for :func:`stitch`.
    """

    def __init__(self, data: StreamData, samples: list[Sample], window: int, hop: int, train: bool):
        self.data, self.samples, self.window, self.hop, self.train = data, samples, window, hop, train
        self.items: list[tuple[int, int, int]] = []  # (sample index, start, length)
        skipped = 0
        for k, smp in enumerate(samples):
            present = frame_presence(smp, data.streams)
            for a in window_starts(smp.length, window, hop):
                n = min(window, smp.length - a)
                if train and not present[a : a + n].any():
                    skipped += 1
                    continue
                self.items.append((k, a, n))
        self.skipped_windows = skipped
        self.label_ids = [samples[k].label for k, _, _ in self.items]
        self.sample_ids = [samples[k].id for k, _, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        k, a, n = self.items[i]
        smp = self.samples[k]
        feats = np.concatenate([smp.values[s][a : a + n] for s in self.data.streams], axis=1)
        masks = np.stack([smp.masks[s][a : a + n] for s in self.data.streams], axis=1)
        labels = np.where(masks.any(axis=1), smp.label, IGNORE)
        return {"feats": torch.from_numpy(feats), "masks": torch.from_numpy(masks), "labels": torch.from_numpy(labels.astype(np.int64))}

    def for_inference(self, eval_hop: int) -> "WindowDataset":
        if not self.train and self.hop == eval_hop:
            return self
        return WindowDataset(self.data, self.samples, self.window, eval_hop, train=False)


def frame_presence(smp: Sample, streams: Sequence[str]) -> np.ndarray:
    return np.any(np.stack([smp.masks[s] for s in streams], axis=0), axis=0)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad windows to the longest in the batch: padded frames are masked and unlabelled."""
    import torch

    n = max(x["feats"].shape[0] for x in items)
    b, d, s = len(items), items[0]["feats"].shape[1], items[0]["masks"].shape[1]
    feats = torch.zeros(b, n, d)
    masks = torch.zeros(b, n, s, dtype=torch.bool)
    labels = torch.full((b, n), IGNORE, dtype=torch.long)
    for i, x in enumerate(items):
        t = x["feats"].shape[0]
        feats[i, :t], masks[i, :t], labels[i, :t] = x["feats"], x["masks"], x["labels"]
    return {"feats": feats, "masks": masks, "labels": labels}


def stitch(ds: WindowDataset, window_logits: np.ndarray) -> list[np.ndarray]:
    """Per-sample frame logits ``(T, C)``: the mean over the inference windows covering each frame.

    ``window_logits`` is ``(len(ds), L, C)`` in dataset order (``Trainer.predict`` pads windows
    shorter than ``L`` with -100, which is never read: only each window's own length is).
    """
    window_logits = np.asarray(window_logits, dtype=np.float64)
    if len(window_logits) != len(ds.items):
        raise ValueError(f"{len(window_logits)} windows of logits for a dataset of {len(ds.items)} windows")
    c = window_logits.shape[-1]
    sums = [np.zeros((smp.length, c)) for smp in ds.samples]
    counts = [np.zeros(smp.length) for smp in ds.samples]
    for (k, a, n), lg in zip(ds.items, window_logits):
        sums[k][a : a + n] += lg[:n]
        counts[k][a : a + n] += 1
    return [s / np.maximum(c_, 1)[:, None] for s, c_ in zip(sums, counts)]


def sample_decisions(ds: WindowDataset, frame_logits: list[np.ndarray], method: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One probability row and one logit row per sample from its present frames (``eval.aggregate``).

    A sample with no present frame is decided from all its frames (its output then reflects the
    masks only) and its index is returned, to be marked in the prediction file.
    """
    from scipy.special import softmax

    from eval.aggregate import aggregate_clips
    from eval.calibration import probs_to_logits

    frames, owners, empty = [], [], []
    for k, (smp, lg) in enumerate(zip(ds.samples, frame_logits)):
        present = frame_presence(smp, ds.data.streams)
        if not present.any():
            present = np.ones_like(present)
            empty.append(k)
        frames.append(lg[present])
        owners += [k] * int(present.sum())
    all_logits = np.concatenate(frames)
    _, probs = aggregate_clips(owners, softmax(all_logits, axis=1), method, logits=all_logits)
    if method == "mean_logits":
        logits = np.stack([f.mean(axis=0) for f in frames])
    else:
        logits = probs_to_logits(probs)
    return probs, logits, empty
