"""Use trained runs on new media: images, clips or folders -> cues -> prompts / streams -> predictions.

A run folder (``llm/finetune.py`` text runs, ``baselines/feature_fusion/train.py`` feature runs:
the stream models, and EMENet, which makes its own face crops and spectrograms)
says which dataset it was trained on (``run.json``); that dataset's manifest holds everything
needed to treat a new input exactly as training did: the cue extraction settings, the template,
modalities, converter settings and the training split's normalisation statistics (text), the
stream set, rate and normalisation (features). :func:`load_predictor` rebuilds the model of one
run, :class:`Ensemble` averages several, :func:`predict_paths` runs the whole path for many inputs
(cue extraction in parallel workers, cached by content hash in the dataset's cue cache),
resumable when writing to ``--out``.

Unknown speaker. A new input carries no speaker, so speaker normalisation cannot use the
speaker's other clips. The fallback is the one the build itself uses for speakers with too few
clips: prompts describe prosody against the training split's dataset-level statistics
(``NormStats.stats(measure, None)``) and streams are z-scored with the training split's
statistics (``streams.writer.speaker_normalise``'s fallback). ``speaker=`` names a training
speaker instead: the prompt then uses that speaker's saved statistics; streams still use the
training-split fallback (per-speaker stream statistics are not stored). Each output row records
which (``normalisation``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Sequence

import numpy as np

PREDICTIONS_FILE = "predictions.jsonl"
FAILURES_FILE = "failures.jsonl"
PROMPTS_FILE = "prompts.jsonl"


class PredictError(RuntimeError):
    """A run or input that cannot be used for prediction; the message says what to do."""


# ---------------------------------------------------------------- the run's dataset


def _read_yaml(path: Path) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def run_config(run_dir: Path, info: dict) -> dict:
    """The run's resolved arguments: ``config.yaml`` beside ``run.json``, else the copy in it."""
    path = Path(run_dir) / "config.yaml"
    return _read_yaml(path) if path.exists() else dict(info.get("config") or {})


def open_run(predictor: Any, run_dir: str | Path, info: dict, dataset: str | Path | None) -> dict:
    """What every predictor keeps of its run (folder, run.json, dataset context, classes); returns
    the run's resolved arguments."""
    predictor.run_dir, predictor.info = Path(run_dir), info
    predictor.ctx = dataset_context(resolve_dataset(predictor.run_dir, info, dataset))
    predictor.classes = list(info["classes"])
    return run_config(predictor.run_dir, info)


def run_info(run_dir: Path) -> dict:
    from eval.predictions import PredictionFileError, read_run

    try:
        return read_run(run_dir).info
    except PredictionFileError as e:
        raise PredictError(str(e)) from None


def resolve_dataset(run_dir: Path, info: dict, override: str | Path | None = None) -> Path:
    """The run's dataset folder: ``override``, else run.json's path as written (relative to the
    working directory the run was trained from), tried as given and below each parent of the run.
    A folder whose manifest hash differs from the run's is refused (another build)."""
    from eval.predictions import file_sha256

    recorded = (info.get("dataset") or {}).get("path")
    want = (info.get("dataset") or {}).get("manifest_sha256")
    candidates = [Path(override)] if override else []
    if recorded and not override:
        p = Path(recorded)
        candidates.append(p)
        if not p.is_absolute():
            candidates += [parent / p for parent in Path(run_dir).resolve().parents]
    for c in candidates:
        if (c / "manifest.json").is_file():
            sha = file_sha256(c / "manifest.json")
            if want and sha != want and not override:
                continue
            return c
    raise PredictError(f"{run_dir}: its dataset {recorded!r} (manifest {str(want)[:12]}) is not found; "
                       "pass the dataset folder with --dataset")


@dataclass
class DatasetContext:
    """What a built dataset says about treating new media like its samples."""

    path: Path
    manifest: dict
    classes: list[str]
    extract: Any  # ExtractConfig
    build: Any  # BuildConfig
    cue_dir: Path
    norm_stats: Any = None

    @classmethod
    def load(cls, path: Path) -> "DatasetContext":
        from textualize.build import BuildConfig
        from textualize.extract import ExtractConfig
        from textualize.normalization import NormStats

        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        cfg = dict(manifest.get("config") or {})
        extract = ExtractConfig(**{k: v for k, v in (cfg.get("extract") or {}).items()
                                   if k in ExtractConfig.__dataclass_fields__})
        known = BuildConfig.__dataclass_fields__
        build = BuildConfig(**{**{k: v for k, v in cfg.items() if k in known and k != "extract"},
                               "modalities": tuple(cfg.get("modalities") or manifest.get("modalities") or ()),
                               "extract": extract})
        cue_dir = Path(manifest.get("cues_dir") or path / "cues")
        if not cue_dir.exists() and (path / "cues").exists():
            cue_dir = path / "cues"
        norm = NormStats.load(path / "norm_stats.json") if (path / "norm_stats.json").exists() else None
        classes = list((manifest.get("label_map") or {}).get("classes") or [])
        return cls(path, manifest, classes, extract, build, cue_dir, norm)


_DATASETS: dict[str, DatasetContext] = {}


def dataset_context(path: Path) -> DatasetContext:
    key = str(Path(path).resolve())
    if key not in _DATASETS:
        _DATASETS[key] = DatasetContext.load(Path(path))
    return _DATASETS[key]


# ---------------------------------------------------------------- inputs and cues


@dataclass
class Input:
    """One medium to predict on: its id in the outputs and its cue-cache id."""

    id: str
    path: Path
    clip_id: str
    speaker: str | None = None
    label: str = ""
    start_s: float | None = None  # a window of the medium (annotate's sliding windows)
    end_s: float | None = None
    face_index: int | None = None  # --faces each: which detected face of the image (0 = leftmost)
    face_cues: Any = None  # that face's FacialCues (replaces the clip's main-face cues)
    faces_in_image: int | None = None
    input_id: str | None = None  # the image's id when this is one of its faces


def make_inputs(paths: Iterable[str | Path], speaker: str | None = None, labels: dict[str, str] | None = None) -> list[Input]:
    """Files as given, folders expanded to their media (``extract.expand_inputs``); ids from file
    names (``extract.clip_ids_for``: unique, never silently merged); the cue-cache id is the stem
    plus a hash of the absolute path, as ``build.media_clip_id`` names media outside a corpus root."""
    from textualize.extract import clip_ids_for, expand_inputs
    from textualize.manifest import stable_hash

    files = expand_inputs(paths)
    ids = clip_ids_for(files)
    labels = labels or {}
    out = []
    for f, i in zip(files, ids):
        clip = f"{f.stem}-{stable_hash(str(f.resolve()), 8)}"
        out.append(Input(i, f, clip, speaker, labels.get(i, labels.get(str(f), labels.get(f.name, "")))))
    return out


def cue_dir_for(ctx: DatasetContext, override: str | Path | None = None) -> Path:
    """The dataset's cue cache (content-hashed, shared safely), or a user cache when unwritable."""
    if override:
        return Path(override)
    if os.access(ctx.cue_dir if ctx.cue_dir.exists() else ctx.cue_dir.parent, os.W_OK):
        return ctx.cue_dir
    from textualize.demo import cache_root

    return cache_root() / "predict" / "cues"


def extract_cues(inputs: Sequence[Input], cue_dir: Path, extract, workers: int = 1, progress: bool = True) -> dict[str, str]:
    """Cues of every input into the cue cache (parallel, cached, resumable); failures by input id."""
    from textualize.extract import run_extraction

    by_clip = {i.clip_id: i for i in inputs}
    summary = run_extraction([(i.clip_id, i.path) for i in inputs], cue_dir, extract, workers=workers,
                             progress=progress, run_name="predict")
    return {by_clip[f["clip_id"]].id: f.get("reason") or f.get("error", "failed") for f in summary.failures}


def _missing_reason(cue) -> str | None:
    from textualize.cues import MissingCue

    if isinstance(cue, MissingCue):
        return cue.reason if not cue.detail else f"{cue.reason}: {cue.detail}"
    return None


def face_summary(clip) -> dict[str, Any]:
    """Whether and how the main face was seen (for the output row and the figure)."""
    from textualize.cues import MissingCue

    face = clip.face
    if isinstance(face, MissingCue) and face.reason == "not_requested":
        return {"face": False, "face_reason": "not analysed: the runs' prompts carry no face cues"}
    if isinstance(face, MissingCue):
        return {"face": False, "face_reason": _missing_reason(face)}
    present = [bool(p) for p in face.face_present]
    best = None
    for k, (p, b) in enumerate(zip(present, face.boxes)):
        if p and b is not None and (best is None or b.score > face.boxes[best].score):
            best = k
    out = {"face": any(present), "face_frames": f"{sum(present)}/{len(present)}",
           "faces_max": int(max(face.faces_per_frame)) if face.faces_per_frame else int(any(present))}
    if best is not None:
        b = face.boxes[best]
        out["face_box"] = {"time_s": float(face.times_s[best]), "box": [float(b.x1), float(b.y1), float(b.x2), float(b.y2)],
                           "frame_size": list(face.frame_size)}
    if not any(present):
        out["face_reason"] = "no face detected in any sampled frame"
    return out


class _OneFace:
    """A detector that returns one given box: the cue pipeline then tracks and analyses that face."""

    name = "given-box"

    def __init__(self, box, params: dict):
        self.box, self.params = box, {**params, "face": "one of several (--faces each)"}

    def detect(self, rgb):
        return [self.box]


class FaceSplitter:
    """Every face of an image, each with its own facial cues (``--faces each``): the dataset's
    detector finds the boxes on the frame the cue stage analyses (same ``max_side``), then the
    cue pipeline runs once per box with a detector that returns only that box, so each face gets
    exactly the AU analysis the main face gets. The backends are loaded once, on first use."""

    def __init__(self, extract):
        self.extract = extract
        self._au = self._det = None

    def _backends(self):
        if self._au is None:
            from textualize.registry import AU_BACKENDS, FACE_DETECTORS

            self._au = AU_BACKENDS.get(self.extract.au)(model_dir=self.extract.openface_dir, device="cpu")
            if getattr(self._au, "kind", "frames") != "frames":
                raise PredictError(f"--faces each needs a frame AU backend; the dataset's is {self.extract.au!r} (a table)")
            self._det = FACE_DETECTORS.get(self.extract.detector)(device="cpu")
        return self._au, self._det

    def faces(self, path: Path) -> list[Any]:
        """FacialCues (or MissingCue) per detected face, left to right; [] with no face."""
        from textualize.media import iter_frames
        from textualize.visual_cues.pipeline import extract_facial_cues

        au, det = self._backends()
        frames = iter_frames(path, fps=self.extract.fps, max_side=self.extract.max_side)
        try:
            frame = next(frames, None)
        finally:
            frames.close()
        if frame is None:
            return []
        boxes = det.detect_batch([frame.rgb])[0] if hasattr(det, "detect_batch") else det.detect(frame.rgb)
        params = getattr(det, "params", {"detector": self.extract.detector}) or {}
        return [extract_facial_cues(path, au, _OneFace(b, params), fps=self.extract.fps, max_side=self.extract.max_side)
                for b in sorted(boxes, key=lambda b: (b.x1 + b.x2) / 2)]


def split_faces(inputs: Sequence[Input], cue_dir: Path, extract, splitter: FaceSplitter | None = None) -> list[Input]:
    """``--faces each``: an image in which the cue stage saw several faces becomes one input per
    face (``ID#face1``… left to right); other inputs are kept as they are."""
    from textualize.cues import MissingCue
    from textualize.extract import load_clip
    from textualize.media import IMAGE_SUFFIXES

    out: list[Input] = []
    splitter = splitter or FaceSplitter(extract)
    for inp in inputs:
        clip = load_clip(cue_dir, inp.clip_id) if inp.path.suffix.lower() in IMAGE_SUFFIXES else None
        face = None if clip is None else clip.face
        if clip is None or isinstance(face, MissingCue) or max(face.faces_per_frame or [0]) < 2:
            out.append(inp)
            continue
        per_face = splitter.faces(inp.path)
        for k, cues in enumerate(per_face):
            out.append(Input(f"{inp.id}#face{k + 1}", inp.path, inp.clip_id, inp.speaker, inp.label, face_index=k,
                             face_cues=cues, faces_in_image=len(per_face), input_id=inp.id))
    return out


# ---------------------------------------------------------------- text runs


class TextPredictor:
    """A ``llm/finetune.py`` run: prompt the new input as the dataset did, score with the model."""

    approach = "text"

    def __init__(self, run_dir: Path, info: dict, dataset: str | Path | None = None, device: str | None = None):
        import torch

        cfg = open_run(self, run_dir, info, dataset)
        from textualize.converters.config import TextualizeConfig
        from textualize.templates import load_template

        self.template = load_template((info.get("dataset") or {}).get("template", {}).get("id")
                                      or self.ctx.manifest["template"]["id"])
        self.tconfig = TextualizeConfig.from_build(self.ctx.build)
        self.modalities = tuple(m for m in ("text", "face", "voice") if m in self.ctx.build.modalities)
        self.script = SimpleNamespace(**cfg.get("script", {}))
        pooling = (info.get("describe") or {}).get("pooling")
        if pooling:  # the head the weights were trained with, not `auto` re-resolved against another folder
            self.script.pooling = pooling
        self.model_args = SimpleNamespace(**cfg.get("model", {}))
        self.family = info.get("family") or "encoder"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._tmp = tempfile.mkdtemp(prefix="textualize-predict-")
        self.weights = self._weights_file()
        self._parts = self._trainer = None  # built on the first batch, then reused
        self._calls = 0
        self.model_loads = 0

    def _weights_file(self) -> Path | None:
        if self.info.get("zero_shot") or self.script.method == "zero-shot":
            return None
        for name in ("adapter_model.safetensors", "model.safetensors"):
            if (self.run_dir / name).is_file():
                return self.run_dir / name
        folds = sorted(self.run_dir.glob("fold_*"))
        hint = f" (a k-fold run: pass its fold folders {folds[0]}… as an ensemble)" if folds else ""
        raise PredictError(f"{self.run_dir}: no trained weights (model.safetensors / adapter_model.safetensors){hint}")

    @property
    def name(self) -> str:
        return self.info.get("name") or self.run_dir.name

    def prompt(self, clip, speaker: str | None = None, start_s: float | None = None, end_s: float | None = None) -> dict[str, Any]:
        """The prompt (text and chat messages) and the fragments it was rendered from; with a span,
        the cues inside it only (as build-dataset describes a window of a longer file)."""
        from textualize.corpora.base import Sample
        from textualize.converters import textualize_sample

        sample = Sample(id=clip.clip_id, label="", split="predict", media_path=clip.media.path, speaker=speaker,
                        start_s=start_s, end_s=end_s)
        fragments = textualize_sample(sample, self._used_cues(clip), self.tconfig, self.ctx.norm_stats)
        text = self.template.render_text(fragments, self.modalities, self.classes)
        messages = self.template.render_chat(fragments, self.modalities, self.classes)
        known = speaker is not None and self.ctx.norm_stats is not None and str(speaker) in self.ctx.norm_stats.speakers
        norm = ("speaker's own training statistics" if known else "training-split statistics (unknown speaker)")
        return {"text": text, "messages": messages, "fragments": fragments, "normalisation": norm}

    def extract_config(self):
        """The dataset's extraction settings, less the parts this run's prompts never show: a
        text-only run (MELD, gold transcripts) needs the transcript, not the face pipeline."""
        return dataclasses.replace(self.ctx.extract, audio=self.ctx.extract.audio and bool({"text", "voice"} & set(self.modalities)),
                                   visual=self.ctx.extract.visual and "face" in self.modalities)

    def _used_cues(self, clip):
        """Only the cue kinds the run's prompts carry: a text-only run (MELD, gold transcripts) has
        no voice statistics to describe prosody against, and its prompts never showed any."""
        from textualize.cues import ClipCues

        if not isinstance(clip, ClipCues):
            return clip
        return {"transcript": clip.transcript,
                "prosody": clip.prosody if "voice" in self.modalities else None,
                "face": clip.face if "face" in self.modalities else None}

    def _rows(self, prompts: Sequence[dict]) -> list[dict]:
        rows = [{"id": f"p{k}", "label": "", "label_id": -100, "split": "predict", "text": p["text"],
                 "messages": p["messages"], "transcript": p["fragments"].get("transcript", ""), "speaker": ""}
                for k, p in enumerate(prompts)]
        if self.family == "encoder" and int(getattr(self.script, "future_turns", 0) or 0) > 0:
            for r in rows:  # a lone clip's next turns are unknown: the marker the last turn of a dialogue gets
                r["_future"] = ""
        return rows

    def predict_prompts(self, prompts: Sequence[dict]) -> np.ndarray:
        """Class probabilities ``(n, classes)`` through the family's own prepare/predict path.

        The model is built and its weights loaded on the first call only (``prepare`` with that
        batch); later batches are tokenized as ``prepare`` tokenizes a split and scored by the same
        model and Trainer, so a long-lived predictor (annotate, one clip at a time) loads once."""
        import datasets

        rows = datasets.Dataset.from_list(self._rows(prompts))
        if self._parts is None:
            from transformers import Trainer, TrainingArguments

            from llm.finetune import prepare

            targs = TrainingArguments(output_dir=self._tmp, per_device_eval_batch_size=16, report_to=[],
                                      use_cpu=self.device == "cpu", dataloader_pin_memory=False, disable_tqdm=True)
            parts = prepare(self.family, self.script, self.model_args, targs, datasets.DatasetDict({"predict": rows}), self.classes)
            self._load_weights(parts.model)
            parts.model.eval()
            self._parts = parts
            self._trainer = Trainer(model=parts.model, args=targs, data_collator=parts.collator)
            self.model_loads += 1
            return np.asarray(parts.predict(self._trainer, "predict"), dtype=np.float64)
        self._calls += 1
        split = f"predict_{self._calls}"  # not length-sorted by prepare: predict returns row order
        self._parts.datasets[split] = self._tokenize(rows)
        try:
            return np.asarray(self._parts.predict(self._trainer, split), dtype=np.float64)
        finally:
            del self._parts.datasets[split]

    def _tokenize(self, rows):
        """One more split tokenized exactly as the family's ``prepare`` tokenizes its splits."""
        tok = self._parts.tokenizer
        if self.family == "encoder":
            from llm.encoder import tokenize_split

            return tokenize_split(rows, tok, self.script)
        import datasets

        from llm.decoder import CLASS_LABELS, _classification_split, class_indices, tokenize_prompts

        d = self._parts.describe
        golds = class_indices(rows, self.classes, "predict")
        if d["head"] == "classification":
            enc, _ = _classification_split(tok, rows, d["text_field"], int(d["max_length"]))
            return datasets.Dataset.from_dict({**enc, "labels": golds})
        enc, _ = tokenize_prompts(tok, rows, d["text_field"], int(d["max_length"]) - max(d["answer_tokens"].values()))
        return datasets.Dataset.from_dict({**enc, CLASS_LABELS: golds})

    def _load_weights(self, model) -> None:
        if self.weights is None:
            return
        from safetensors.torch import load_file

        state = load_file(str(self.weights))
        if self.weights.name.startswith("adapter_model"):
            from peft import set_peft_model_state_dict

            result = set_peft_model_state_dict(model, state)
            unexpected = list(getattr(result, "unexpected_keys", []) or [])
            missing = []
        else:
            result = model.load_state_dict(state, strict=False)
            unexpected = list(result.unexpected_keys)
            ignorable = set(getattr(model, "_keys_to_ignore_on_save", None) or [])
            missing = [k for k in result.missing_keys if k not in ignorable and "lm_head" not in k and "position_ids" not in k]
        if unexpected or missing:
            raise PredictError(f"{self.weights}: weights do not fit the run's model "
                               f"({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})")


# ---------------------------------------------------------------- feature runs


class FeaturePredictor:
    """A ``baselines/feature_fusion/train.py`` run of a stream model (lfan, early, late, pooled): the
    input's streams on the dataset's time axis, normalised as in training, through the
    stitched-window inference."""

    approach = "feature"

    def __init__(self, run_dir: Path, info: dict, dataset: str | Path | None = None, device: str | None = None):
        import torch

        from baselines.feature_fusion.args import FeatureArguments
        from baselines.feature_fusion.data import load_stream_data
        from baselines.feature_fusion.registry import FEATURE_MODELS
        from baselines.feature_fusion.spec import StreamModelSpec
        from baselines.feature_fusion.train import merged_args

        cfg = open_run(self, run_dir, info, dataset)
        self.spec = FEATURE_MODELS.get(info["model"])()
        if not isinstance(self.spec, StreamModelSpec):
            raise PredictError(f"{run_dir}: feature model {info['model']!r} reads its own face crops and spectrograms "
                               "(not the aligned streams); predict supports the stream models (lfan, early, late, pooled) and emenet")
        fargs = FeatureArguments(**{k: v for k, v in cfg.get("feature", {}).items() if k in FeatureArguments.__dataclass_fields__})
        margs = None
        if getattr(self.spec, "args_class", None) is not None:
            fields = self.spec.args_class.__dataclass_fields__
            margs = self.spec.args_class(**{k: v for k, v in cfg.get("model", {}).items() if k in fields})
        self.args = merged_args(fargs, None, margs)
        self.streams = list(info.get("streams_used") or fargs.stream_list)
        data = load_stream_data(self.ctx.path, self.classes, self.streams, None, standardize=False)
        self.data = data
        self.rate_hz = float(data.manifest["rate_hz"])
        self.speaker_norm = bool(data.manifest.get("speaker_normalisation"))
        self.temperature = info.get("temperature")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = self.spec.make_model(data.layout(), len(self.classes), self.args)
        self.weights = self._weights_file()
        from safetensors.torch import load_file

        result = self.model.load_state_dict(load_file(str(self.weights)), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise PredictError(f"{self.weights}: weights do not fit the {info['model']} model "
                               f"(missing {result.missing_keys[:2]}, unexpected {result.unexpected_keys[:2]})")
        self.model.to(self.device).eval()
        self._extractors = None
        self._fallback = None

    def _weights_file(self) -> Path:
        cands = [self.run_dir / "model.safetensors"]
        best = self.info.get("best_checkpoint")
        if best:
            cands.append(self.run_dir / Path(best).name / "model.safetensors")
        cands += sorted(self.run_dir.glob("checkpoint-*/model.safetensors"), key=lambda p: int(p.parent.name.split("-")[-1]))[::-1]
        for c in cands:
            if c.is_file():
                return c
        raise PredictError(f"{self.run_dir}: no model weights (model.safetensors or a checkpoint)")

    @property
    def name(self) -> str:
        return self.info.get("name") or self.run_dir.name

    # -- streams of new inputs
    def _instances(self) -> dict:
        from textualize.registry import STREAM_EXTRACTORS

        if self._extractors is None:
            self._extractors = {n: STREAM_EXTRACTORS.get(n)() for n in self.streams}
        return self._extractors

    def _context(self, sid: str, split: str, speaker: str, clip, clip_id: str | None, media: str | None, cue_dir: Path,
                 start=None, end=None, transcript: str = ""):
        from textualize.streams.base import SampleContext

        return SampleContext(id=sid, split=split, speaker=speaker, start_s=start, end_s=end, clip_id=clip_id,
                             media_path=media, cue_dir=cue_dir, clip=clip, sample=None,
                             prefer_gold_transcript=bool(self.ctx.build.prefer_gold_transcript),
                             transcript_column=transcript, extract=asdict(self.ctx.extract))

    def raw_streams(self, sctx) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(times, values, masks) of one sample before any normalisation (the writer's steps)."""
        from textualize.streams.align import align, align_per_clip, axis
        from textualize.streams.base import finite
        from textualize.streams.writer import _span

        sources = {n: ext.source(sctx) for n, ext in self._instances().items()}
        span = _span(sctx, sources)
        times = axis(span[0], span[1], self.rate_hz) if span else np.asarray(
            [sctx.start_s if finite(sctx.start_s) else 0.0], np.float64)
        values, masks = {}, {}
        for n in self.streams:
            src = sources.get(n)
            dim = self.data.dims[n]
            if src is None:
                values[n], masks[n] = np.zeros((len(times), dim), np.float32), np.zeros(len(times), bool)
                continue
            if src.per_clip:
                v, m = align_per_clip(src, len(times))
            else:
                v, m = align(src, times, self.rate_hz, end_s=span[1] if span else None)
            if v.shape[1] != dim:
                raise PredictError(f"stream {n}: {v.shape[1]} dimensions for this input but {dim} in training "
                                   "(cues from another backend?)")
            values[n], masks[n] = v.astype(np.float32), m.astype(bool)
        return times, values, masks

    def _train_fallback_stats(self) -> dict[str, tuple]:
        """The training split's per-dimension statistics of the raw streams: what the writer's
        speaker normalisation uses for unknown speakers. Recomputed from the cached per-clip
        extractions once per dataset and kept under the cache folder."""
        if self._fallback is not None:
            return self._fallback
        from datasets import load_from_disk

        from textualize.demo import cache_root
        from textualize.manifest import atomic_write_bytes, stable_hash
        from textualize.streams.writer import _Sample, _stats, finite_float

        key = stable_hash({"dataset": self.data.manifest.get("dataset_manifest_sha256"), "streams": self.streams,
                           "rate": self.rate_hz, "run_key": self.data.manifest.get("run_key")}, 16)
        path = cache_root() / "predict" / f"stream-norm-{key}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                self._fallback = {n: (z[f"{n}/mu"], z[f"{n}/sd"]) if f"{n}/mu" in z.files else (None, None) for n in self.streams}
            return self._fallback
        from textualize.cues import from_json
        from textualize.extract import cue_path
        from textualize.manifest import read_json

        dd = load_from_disk(str(self.ctx.path))
        split = "train" if "train" in dd else next(iter(dd))
        cue_dir = Path(self.data.manifest.get("cues_dir") or self.ctx.cue_dir)
        if not cue_dir.exists():
            cue_dir = self.ctx.cue_dir
        samples = []
        for r in dd[split]:
            cid = r.get("cue_clip_id") or None
            clip = from_json(read_json(cue_path(cue_dir, cid))) if cid and cue_path(cue_dir, cid).exists() else None
            sctx = self._context(r["id"], split, str(r.get("speaker") or ""), clip, cid, r.get("media_path") or None, cue_dir,
                                 finite_float(r.get("start_s")), finite_float(r.get("end_s")), str(r.get("transcript") or ""))
            times, values, masks = self.raw_streams(sctx)
            samples.append(_Sample(r["id"], split, sctx.speaker, times, values, masks))
        stats = {n: _stats(samples, n) for n in self.streams}
        import io

        buf = io.BytesIO()
        np.savez(buf, **{f"{n}/{k}": v for n, (mu, sd) in stats.items() if mu is not None for k, v in (("mu", mu), ("sd", sd))})
        atomic_write_bytes(path, buf.getvalue())
        self._fallback = stats
        return stats

    def sample_for(self, clip, inp: Input, cue_dir: Path):
        from baselines.feature_fusion.data import Sample

        sctx = self._context(inp.id, "predict", "", clip, inp.clip_id, str(inp.path), cue_dir, inp.start_s, inp.end_s)
        times, values, masks = self.raw_streams(sctx)
        if self.speaker_norm:
            stats = self._train_fallback_stats()
            for n in self.streams:
                mu, sd = stats[n]
                m = masks[n]
                if mu is not None and m.any():
                    values[n][m] = ((values[n][m] - mu) / sd).astype(np.float32)
        for n in self.streams:  # as load_stream_data: masked steps are zeros, never NaN
            v, m = values[n], masks[n]
            m = m & np.isfinite(v).all(axis=1)
            values[n], masks[n] = np.where(np.isfinite(v) & m[:, None], v, 0.0).astype(np.float32), m
        return Sample(inp.id, 0, inp.id, values, masks), times

    def predict_samples(self, samples) -> list[dict[str, Any]]:
        """Per sample: probabilities, logits and per-frame probabilities (stitched windows)."""
        import torch
        from scipy.special import softmax

        from baselines.feature_fusion.data import Sample, StreamData, WindowDataset, collate, sample_decisions, standardize_streams, stitch

        train = [Sample(x.id, x.label, x.clip, dict(x.values), x.masks) for x in self.data.splits.get("train", [])]
        data = StreamData(self.data.streams, self.data.dims, self.data.modality_of, self.data.manifest,
                          {"train": train, "predict": list(samples)})
        if self.args.standardize and train:
            standardize_streams(data)  # the training split's statistics, as in training
        ds = WindowDataset(data, list(samples), self.args.window, self.args.eval_hop or self.args.hop, train=False)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(ds), 16):
                items = [ds[j] for j in range(i, min(i + 16, len(ds)))]
                batch = collate(items)
                lg = self.model(feats=batch["feats"].to(self.device), masks=batch["masks"].to(self.device))["logits"]
                outs += list(lg.float().cpu().numpy())
        width = max(x.shape[0] for x in outs)
        padded = np.stack([np.pad(x, ((0, width - x.shape[0]), (0, 0))) for x in outs])
        frame_logits = stitch(ds, padded)
        probs, logits, empty = sample_decisions(ds, frame_logits, self.args.aggregate)
        result = []
        for k, smp in enumerate(ds.samples):
            row = {"probs": probs[k], "logits": logits[k], "frame_probs": softmax(frame_logits[k], axis=1),
                   "frame_present": np.any(np.stack([smp.masks[s] for s in data.streams]), axis=0)}
            if k in empty:
                row["no_stream_data"] = True
            result.append(row)
        return result


class EMENetPredictor:
    """A ``--model emenet`` run: its own face crops and log-mel patches of the new input (the same
    ``MediaCache`` and crop settings as training, cached by content hash), overlapping windows,
    per-frame logits averaged over the windows and aggregated per input as in training."""

    approach = "feature"

    def __init__(self, run_dir: Path, info: dict, dataset: str | Path | None = None, device: str | None = None):
        import torch
        from safetensors.torch import load_file

        from baselines.feature_fusion.emenet_data import CropConfig, MediaCache
        from baselines.feature_fusion.models.emenet import EMENet, EMENetConfig
        from textualize.demo import cache_root

        cfg = open_run(self, run_dir, info, dataset)
        self.aggregate = (cfg.get("feature") or {}).get("aggregate") or "mean_probs"
        self.config = EMENetConfig.from_args(SimpleNamespace(**(cfg.get("model") or {})))
        heads = ((info.get("model_info") or {}).get("heads") or {})
        self.au_names, self.use_va = list(heads.get("au") or []), bool(heads.get("valence_arousal"))
        self.crop = CropConfig(fps=float(self.config.fps), margin=float(self.config.crop_margin))
        self.cache = MediaCache(self.config.cache_dir or cache_root() / "emenet", self.crop, device=self.config.device)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.speaker_norm, self.temperature = False, info.get("temperature")
        self.model = EMENet(len(self.classes), self.au_names, self.use_va, self.config)
        self.weights = FeaturePredictor._weights_file(self)
        result = self.model.load_state_dict(load_file(str(self.weights)), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise PredictError(f"{self.weights}: weights do not fit the emenet model "
                               f"(missing {result.missing_keys[:2]}, unexpected {result.unexpected_keys[:2]})")
        self.model.to(self.device).eval()

    @property
    def name(self) -> str:
        return self.info.get("name") or self.run_dir.name

    def sample_for(self, clip, inp: Input, cue_dir: Path):
        from baselines.feature_fusion.emenet_data import EMENetDataError, sample_frames

        try:
            media = self.cache.get(inp.path)
            row = {"id": inp.id, "label": self.classes[0], "start_s": inp.start_s, "end_s": inp.end_s}  # label unused
            sf = sample_frames(row, media, self.cache.entry_dir(inp.path), self.classes, None)
        except EMENetDataError as e:
            raise PredictError(str(e)) from None
        return sf, np.asarray(media.times_s)[sf.frames].astype(np.float64)

    def predict_samples(self, samples) -> list[dict[str, Any]]:
        import torch
        from scipy.special import softmax

        from baselines.feature_fusion.emenet_data import EMENetWindows, collate
        from baselines.feature_fusion.models.emenet import aggregate_windows

        view = EMENetWindows(samples, self.crop, self.config.window, self.config.hop, False, self.au_names, self.use_va,
                             self.config.eval_hop).for_prediction()
        names = ["logits"] + (["au_logits"] if self.au_names else []) + (["va"] if self.use_va else [])
        outs: dict[str, list] = {n: [] for n in names}
        keys = ("faces", "face_mask", "mels", "audio_mask", "frame_mask")
        with torch.inference_mode():
            for i in range(0, len(view), 8):
                batch = collate([view[j] for j in range(i, min(i + 8, len(view)))])
                out = self.model(**{k: batch[k].to(self.device) for k in keys})
                for n in names:
                    outs[n].append(out[n].float().cpu().numpy())
        preds = [np.concatenate(outs[n]) for n in names]
        agg = aggregate_windows(view, preds, self.aggregate)
        logits = preds[0]
        result = []
        for k, smp in enumerate(view.samples):  # per-frame logits: the mean over the windows covering the frame
            sums, counts = np.zeros((len(smp.frames), logits.shape[-1])), np.zeros(len(smp.frames))
            for w, (kk, a) in enumerate(view.index):
                if kk == k:
                    n = min(view.window, len(smp.frames) - a)
                    sums[a:a + n] += logits[w, :n]
                    counts[a:a + n] += 1
            present = smp.face_mask | smp.has_audio
            row = {"probs": np.asarray(agg["probs"][k], np.float64), "logits": np.asarray(agg["logits"][k], np.float64),
                   "frame_probs": softmax(sums / np.maximum(counts, 1)[:, None], axis=1), "frame_present": present}
            if not present.any():
                row["no_stream_data"] = True
            result.append(row)
        return result


def load_predictor(run_dir: str | Path, dataset: str | Path | None = None, device: str | None = None):
    """A predictor for one run folder, by run.json's ``approach`` (text or feature)."""
    run_dir = Path(run_dir)
    info = run_info(run_dir)
    approach = info.get("approach")
    if approach == "text":
        return TextPredictor(run_dir, info, dataset, device)
    if approach == "feature" and info.get("model") == "emenet":
        return EMENetPredictor(run_dir, info, dataset, device)
    if approach == "feature":
        return FeaturePredictor(run_dir, info, dataset, device)
    raise PredictError(f"{run_dir}: approach {approach!r} cannot predict on new media (text and feature runs can; "
                       "a hybrid run is its members: pass them as an ensemble)")


# ---------------------------------------------------------------- one input through every run


def predict_batch(predictors: Sequence[Any], inputs: Sequence[Input], cue_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """Every member on a batch of inputs (one model pass per member); per input the ensemble's
    mean, its normalised entropy and the members' spread, or ``{"error": ...}`` for that input."""
    from textualize.extract import load_clip

    n = len(inputs)
    errors: dict[int, str] = {}
    clips: list[Any] = [None] * n
    details: list[list[dict]] = [[] for _ in range(n)]
    for pred, cue_dir in zip(predictors, cue_dirs):
        ok = []
        for k, inp in enumerate(inputs):
            if k in errors:
                continue
            try:
                clip = load_clip(cue_dir, inp.clip_id)
                if inp.face_cues is not None:  # one face of several (--faces each)
                    clip = dataclasses.replace(clip, face=inp.face_cues)
                clips[k] = clips[k] or clip
                ok.append((k, clip))
            except Exception as e:
                errors[k] = f"cues of {inp.path} cannot be read ({type(e).__name__}: {e})"
        if pred.approach == "text":
            prompts, keep = [], []
            for k, clip in ok:
                try:
                    prompts.append(pred.prompt(clip, inputs[k].speaker, inputs[k].start_s, inputs[k].end_s))
                    keep.append(k)
                except Exception as e:
                    errors[k] = f"prompt for {pred.name}: {type(e).__name__}: {e}"
            probs = pred.predict_prompts(prompts) if prompts else np.zeros((0, len(pred.classes)))
            for k, prompt, p in zip(keep, prompts, probs):
                details[k].append({"run": pred.name, "approach": "text", "prompt": prompt["text"],
                                   "messages": prompt["messages"], "normalisation": prompt["normalisation"], "probs": p})
        else:
            samples, keep = [], []
            for k, clip in ok:
                try:
                    samples.append(pred.sample_for(clip, inputs[k], cue_dir))
                    keep.append(k)
                except Exception as e:
                    errors[k] = f"streams for {pred.name}: {type(e).__name__}: {e}"
            outs = pred.predict_samples([s for s, _ in samples]) if samples else []
            for k, (_, times), out in zip(keep, samples, outs):
                d = {"run": pred.name, "approach": "feature", "probs": out["probs"], "frame_times": times,
                     "frame_probs": out["frame_probs"], "frame_present": out["frame_present"],
                     "normalisation": "training-split stream statistics (unknown speaker)" if pred.speaker_norm else "none"}
                if pred.temperature:
                    from eval.calibration import apply_temperature, normalized_entropy

                    d["entropy_calibrated"] = float(normalized_entropy(apply_temperature(out["logits"][None], pred.temperature))[0])
                if out.get("no_stream_data"):
                    d["no_stream_data"] = True
                details[k].append(d)
    results = []
    for k, inp in enumerate(inputs):
        if k in errors:
            results.append({"input": inp, "error": errors[k]})
        else:
            results.append(combine(predictors[0].classes, inp, clips[k], details[k]))
    return results


def combine(classes: Sequence[str], inp: Input, clip, details: list[dict]) -> dict[str, Any]:
    """One output row (shared prediction format + uncertainty) from the members' probabilities."""
    from eval.calibration import ensemble_spread, normalized_entropy
    from textualize.streams.writer import finite_float

    members = np.asarray([d["probs"] for d in details])
    spread = ensemble_spread(members[:, None, :])
    probs = spread["mean"][0]
    row: dict[str, Any] = {
        "id": inp.id, "label": inp.label, "prediction": classes[int(np.argmax(probs))],
        "probs": {c: round(float(v), 6) for c, v in zip(classes, probs)},
        "entropy": round(float(normalized_entropy(probs)), 6), "path": str(inp.path),
        "runs": [d["run"] for d in details],
    }
    if len(details) > 1:
        row["spread"] = {k: round(float(spread[k][0]), 6) for k in ("std", "epistemic", "aleatoric")}
        row["members"] = [{"run": d["run"], "prediction": classes[int(np.argmax(d["probs"]))],
                           "probs": {c: round(float(v), 6) for c, v in zip(classes, d["probs"])}} for d in details]
    elif "entropy_calibrated" in details[0]:
        row["entropy_calibrated"] = round(details[0]["entropy_calibrated"], 6)
    row.update({k: v for k, v in face_summary(clip).items() if k != "face_box"})
    if inp.face_index is not None:
        row.update(input_id=inp.input_id, face_index=inp.face_index + 1, faces_in_image=inp.faces_in_image)
        box = face_summary(clip).get("face_box")
        if box:
            row["face_box"] = [round(v, 1) for v in box["box"]]
    elif row.get("faces_max", 0) > 1:
        row["faces_note"] = (f"{row['faces_max']} faces detected; predicted for the main one (largest and most "
                             "confident" + (", followed through the clip)" if (clip.media.duration_s or 0) > 0 else ")")
                             + (" — --faces each predicts every face of an image" if inp.path.suffix.lower() in _image_suffixes() else ""))
    missing = {kind: _missing_reason(getattr(clip, kind)) for kind in ("transcript", "prosody", "face")}
    row["missing_cues"] = {k: v for k, v in missing.items() if v and not v.startswith("not_requested")}
    row["transcript"] = transcript_text(clip)
    row["duration_s"] = finite_float(clip.media.duration_s)
    row["normalisation"] = sorted({d["normalisation"] for d in details})
    no_data = [d["run"] for d in details if d.get("no_stream_data")]
    if no_data:
        row["no_stream_data"] = no_data
    return {"row": row, "details": details, "clip": clip, "classes": list(classes), "input": inp}


def _image_suffixes() -> set[str]:
    from textualize.media import IMAGE_SUFFIXES

    return IMAGE_SUFFIXES


def transcript_text(clip) -> str:
    from textualize.cues import MissingCue

    t = clip.transcript
    return "" if isinstance(t, MissingCue) else t.text


# ---------------------------------------------------------------- many inputs, resumable


@dataclass
class PredictConfig:
    out: Path | None = None
    workers: int = 1
    plot: bool = False
    progress: bool = True
    speaker: str | None = None
    cues_dir: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    batch: int = 32  # inputs per model pass (and per append to the output)
    faces: str = "main"  # images with several faces: "main" (one row) or "each" (a row per face)


def done_ids(out: Path) -> set[str]:
    from textualize.manifest import JsonlLog

    rows = list(JsonlLog(out / PREDICTIONS_FILE))
    return {str(r["id"]) for r in rows if "id" in r} | {str(r["input_id"]) for r in rows if r.get("input_id")}


def predict_paths(paths: Sequence[str | Path], predictors: Sequence[Any], config: PredictConfig = PredictConfig(),
                  on_row: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Inputs -> cues (parallel workers, cue cache) -> every member -> rows (and files with ``out``).

    With ``out``: ``predictions.jsonl`` (shared prediction format plus uncertainty fields, one line
    per input, appended as each finishes; inputs already there are skipped, so a rerun resumes),
    ``prompts.jsonl`` (text runs' prompts), ``failures.jsonl`` (input, stage, reason) and
    ``plots/<id>.png`` with ``plot``. Returns the rows and failures of this call."""
    from textualize.manifest import JsonlLog, atomic_write_json

    if not predictors:
        raise PredictError("no run given (--run RUN)")
    if config.faces not in ("main", "each"):
        raise PredictError(f"--faces must be 'main' or 'each', not {config.faces!r}")
    classes = predictors[0].classes
    for p in predictors[1:]:
        if p.classes != classes:
            raise PredictError(f"ensemble members disagree on the classes: {p.run_dir} has {p.classes}, "
                               f"{predictors[0].run_dir} has {classes}")
    inputs = make_inputs(paths, config.speaker, config.labels)
    if not inputs:
        raise PredictError(f"no media files in {', '.join(map(str, paths))}")
    out = Path(config.out) if config.out else None
    skipped = 0
    failures_log = preds_log = prompts_log = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        have = done_ids(out)
        skipped = sum(1 for i in inputs if i.id in have)
        inputs = [i for i in inputs if i.id not in have]
        failures_log, preds_log, prompts_log = (JsonlLog(out / FAILURES_FILE), JsonlLog(out / PREDICTIONS_FILE),
                                                JsonlLog(out / PROMPTS_FILE))
        if failures_log.path.exists():
            failures_log.path.unlink()  # failed inputs are retried; this run records its own
    failures: list[dict] = []
    rows: list[dict] = []
    results_out: list[dict] = []

    def fail(inp: Input, stage: str, reason: str) -> None:
        rec = {"id": inp.id, "path": str(inp.path), "stage": stage, "reason": reason}
        failures.append(rec)
        if failures_log is not None:
            failures_log.append(rec)

    # cues: once per distinct (cue folder, extraction settings) among the members
    cue_dirs = []
    groups: dict[tuple, Path] = {}
    failed: dict[str, str] = {}
    for p in predictors:
        cd = cue_dir_for(p.ctx, config.cues_dir)
        # only the parts the member reads (--faces each tracks faces whatever the members show)
        extract = p.extract_config() if hasattr(p, "extract_config") and config.faces != "each" else p.ctx.extract
        key = (str(cd), json.dumps(asdict(extract), sort_keys=True))
        if key not in groups:
            groups[key] = cd
            if inputs:
                failed.update(extract_cues(inputs, cd, extract, config.workers, config.progress))
        cue_dirs.append(cd)
    t0 = time.perf_counter()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]predict"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.description}"))
    with Progress(*columns, disable=not config.progress or len(inputs) < 2, transient=True) as bar:
        task = bar.add_task("", total=len(inputs))
        pending = [i for i in inputs if i.id not in failed]
        if config.faces == "each" and pending:
            try:
                pending = split_faces(pending, cue_dirs[0], predictors[0].ctx.extract)
            except PredictError:
                raise
            except Exception as e:  # a backend that cannot load: the whole call cannot honour --faces each
                raise PredictError(f"--faces each: the faces could not be separated ({type(e).__name__}: {e})") from None
            bar.update(task, total=sum(1 for i in inputs if i.id in failed) + len(pending))
        for inp in inputs:
            if inp.id in failed:
                fail(inp, "extract", failed[inp.id])
                bar.advance(task)
        for start in range(0, len(pending), config.batch):
            chunk = pending[start:start + config.batch]
            bar.update(task, description=chunk[0].id)
            try:
                results = predict_batch(predictors, chunk, cue_dirs)
            except Exception as e:  # a model that fails on the whole batch: recorded per input
                results = [{"input": i, "error": f"{type(e).__name__}: {e}"} for i in chunk]
            for result in results:
                inp = result["input"]
                if "error" in result:
                    fail(inp, "predict", result["error"])
                    bar.advance(task)
                    continue
                row = result["row"]
                if config.plot and out is not None:
                    from textualize.predict_plot import plot_prediction

                    try:
                        row["plot"] = str(plot_prediction(result, out / "plots" / f"{_safe(inp.id)}.png"))
                    except Exception as e:
                        row["plot_error"] = f"{type(e).__name__}: {e}"
                if preds_log is not None:
                    preds_log.append(row)
                    for d in result["details"]:
                        if d["approach"] == "text":
                            prompts_log.append({"id": inp.id, "run": d["run"], "prompt": d["prompt"], "messages": d["messages"]})
                rows.append(row)
                results_out.append(result)
                if on_row:
                    on_row(row)
                bar.advance(task)
    summary = {"predicted": len(rows), "skipped_already_done": skipped, "failed": len(failures),
               "seconds": round(time.perf_counter() - t0, 2), "runs": [str(p.run_dir) for p in predictors],
               "classes": classes}
    if out is not None:
        atomic_write_json(out / "manifest.json", {"stage": "predict", **summary,
                                                  "cue_dirs": sorted({str(c) for c in cue_dirs})})
    return {"rows": rows, "failures": failures, "results": results_out, **summary}


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def read_labels(path: str | Path) -> dict[str, str]:
    """``--labels`` CSV: columns id (or path) and label, so the JSONL rows can be evaluated."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "label" not in rows[0] or not ({"id", "path"} & set(rows[0])):
        raise PredictError(f"{path}: expected a CSV with columns id (or path) and label")
    return {(r.get("id") or r.get("path")): r["label"] for r in rows}


# ---------------------------------------------------------------- command line (registered in cli.py)

import typer  # noqa: E402 (light; the command's options need it at definition)


def print_rows(rows: Sequence[dict], classes: Sequence[str], console) -> None:
    from rich.table import Table

    table = Table(title=f"predictions ({len(rows)})")
    for col in ("input", "prediction", "p", "entropy", "spread (sd)", "face", "top classes"):
        table.add_column(col, overflow="fold")
    for r in rows:
        top = sorted(r["probs"].items(), key=lambda kv: -kv[1])[:3]
        face = "no face" if not r.get("face") else f"{r.get('face_frames', '')}" + (f" ({r['faces_max']} max)" if r.get("faces_max", 1) > 1 else "")
        if r.get("face_index"):
            face = f"face {r['face_index']} of {r['faces_in_image']}" + ("" if r.get("face") else " (not analysable)")
        table.add_row(r["id"], r["prediction"], f"{r['probs'][r['prediction']]:.2f}", f"{r['entropy']:.2f}",
                      f"{r['spread']['std']:.2f}" if "spread" in r else "-", face,
                      ", ".join(f"{c} {p:.2f}" for c, p in top))
    console.print(table)


def predict_cmd(
    paths: list[Path] = typer.Argument(None, help="Images, audio or video clips, or folders of them."),
    run: list[Path] = typer.Option(..., "--run", help="A run folder (text or feature); several = an ensemble."),
    out: Path = typer.Option(None, "--out", help="Folder for predictions.jsonl, prompts.jsonl, failures.jsonl (and plots/); reruns skip finished inputs."),
    plot: bool = typer.Option(False, "--plot", help="An explanation figure per input (needs --out)."),
    workers: int = typer.Option(1, help="Parallel cue-extraction workers."),
    dataset: Path = typer.Option(None, "--dataset", help="The runs' dataset folder when run.json's path does not resolve here."),
    speaker: str = typer.Option(None, "--speaker", help="A training speaker to normalise the prompt against (default: unknown speaker)."),
    labels: Path = typer.Option(None, "--labels", help="CSV with id (or path) and label columns, so the JSONL can be evaluated."),
    cues_dir: Path = typer.Option(None, "--cues-dir", help="Cue cache (default: the dataset's, content-hashed)."),
    camera: int = typer.Option(None, "--camera", help="Record --seconds from webcam N, then predict on that clip (kept in --out)."),
    seconds: float = typer.Option(5.0, "--seconds", help="--camera: how long to record (s)."),
    faces: str = typer.Option("main", "--faces", help="Images with several faces: 'main' (one row, the most prominent face) or 'each' (a row per face, ID#face1… left to right)."),
) -> None:
    """Predict the emotion of new media with trained runs: label, class probabilities, normalised
    entropy and, with several --run, the members' spread."""
    from rich.console import Console

    console = Console()

    def fail(msg: str) -> None:
        console.print(f"[red]error:[/red] {msg}", markup=True, highlight=False)
        raise typer.Exit(2)

    if camera is not None:
        from textualize.annotate import camera_problem, camera_source, record_clip

        problem = camera_problem(camera)
        if problem:
            fail(problem)
        folder = Path(out) / "camera" if out else Path(tempfile.mkdtemp(prefix="textualize-camera-"))
        folder.mkdir(parents=True, exist_ok=True)
        clip = folder / f"camera{camera}-{time.strftime('%Y%m%d-%H%M%S')}.mp4"
        console.print(f"recording {seconds:g} s from camera {camera} ...", highlight=False)
        try:
            source, input_format = camera_source(camera)
            paths = [*(paths or []), record_clip(source, clip, seconds, input_format)]
        except Exception as e:  # a capture device can fail in many ways; one line, no traceback
            fail(f"camera {camera}: {type(e).__name__}: {e}")
        console.print(f"recorded {clip}", highlight=False)
    if not paths:
        fail("give at least one input file or folder (or --camera N)")
    if plot and out is None:
        fail("--plot writes figures into --out DIR; give --out")
    try:
        predictors = [load_predictor(r, dataset) for r in run]
        result = predict_paths(paths, predictors, PredictConfig(
            out=out, workers=workers, plot=plot, speaker=speaker, cues_dir=str(cues_dir) if cues_dir else None, faces=faces,
            labels=read_labels(labels) if labels else {}))
    except (PredictError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    print_rows(result["rows"], result["classes"], console)
    for f in result["failures"]:
        console.print(f"[yellow]failed[/yellow] {f['id']} ({f['stage']}): {f['reason']}", highlight=False)
    tail = f"; {result['skipped_already_done']} already in {out / PREDICTIONS_FILE}" if out and result["skipped_already_done"] else ""
    console.print(f"{result['predicted']} predicted, {result['failed']} failed{tail} in {result['seconds']} s"
                  + (f"; written to {out}" if out else ""))
