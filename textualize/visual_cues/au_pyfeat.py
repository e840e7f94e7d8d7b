"""py-feat AU backend: 20 AU occurrence probabilities + 7 emotion probabilities per face.

Runs py-feat's own ``Detectorv1`` (RetinaFace, MobileFaceNet landmarks, XGBoost AU classifiers on
HOG + landmarks, ResMaskNet emotions) on the frame and keeps the detected face that overlaps the
pipeline's main-face box best. py-feat downloads its weights from the Hugging Face hub into
``feat/resources`` of its install; offline it needs that cache pre-filled (and ``HF_HUB_OFFLINE=1``
so it does not wait on the network). A missing weight becomes ``ModelUnavailableError`` naming the
repositories and files to fetch, not a hub client's stack trace.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from textualize.cues import FaceBox, FacialCues, MissingCue
from textualize.media import Frame
from textualize.models import ModelUnavailableError, package_dir
from textualize.registry import AU_BACKENDS
from textualize.visual_cues.base import FrameAUs

PYFEAT_AUS: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12", "AU14", "AU15",
    "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43",
)

# Hub files Detectorv1 loads with our settings (face_model retinaface, landmark mobilefacenet,
# pose MLP, au xgb, emotion resmasknet, no identity / gaze). Alternatives = fallback file names.
REQUIRED_WEIGHTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("py-feat/retinaface_r34", ("model.safetensors", "retinaface_r34.safetensors")),
    ("py-feat/mobilefacenet", ("mobilefacenet_model_best.pth.tar",)),
    ("py-feat/pose_mlp_v2", ("pose_mlp_v2.safetensors",)),
    ("py-feat/pose_mlp_v2", ("pose_mlp_v2.json",)),
    ("py-feat/xgb_au", ("xgb_au_classifier_v2.skops", "xgb_au_classifier.skops")),
    ("py-feat/resmasknet", ("config.json",)),
    ("py-feat/resmasknet", ("ResMaskNet_Z_resmasking_dropout1_rot30.pth",)),
)
MIN_IOU = 0.3  # a py-feat face must overlap the main-face box this much to be "the same face"


def pyfeat_resource_dir() -> Path | None:
    """py-feat's hub cache folder (``feat/resources``), found without importing py-feat."""
    base = package_dir("feat")
    return None if base is None else base / "resources"


def missing_pyfeat_weights(resource_dir: Path | None = None) -> list[str]:
    """'repo/file' for each required weight absent from the hub cache."""
    resource_dir = resource_dir or pyfeat_resource_dir()
    missing = []
    for repo, names in REQUIRED_WEIGHTS:
        folder = None if resource_dir is None else resource_dir / f"models--{repo.replace('/', '--')}" / "snapshots"
        found = folder is not None and any(any(folder.glob(f"*/{n}")) for n in names)
        if not found:
            missing.append(f"{repo}/{names[0]}")
    return missing


def _how_to_fill(missing: list[str], resource_dir: Path | None) -> str:
    where = resource_dir or "feat/resources inside py-feat's install"
    return (
        f"py-feat weights are not in its cache ({where}): missing {', '.join(missing)}. On a machine "
        "with internet run once: python -c \"from feat.detector import Detectorv1; "
        "Detectorv1(identity_model=None, gaze_model=None)\" (py-feat downloads them from the Hugging "
        f"Face hub into {where}), or copy that folder's models--py-feat--* entries here; then run "
        "offline with HF_HUB_OFFLINE=1."
    )


@contextlib.contextmanager
def _hub_offline(enabled: bool):
    """Make huggingface_hub answer from its cache only (it reads HF_HUB_OFFLINE at import)."""
    if not enabled:
        yield
        return
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hub_constants

        old_const = hub_constants.HF_HUB_OFFLINE
        hub_constants.HF_HUB_OFFLINE = True
    except ImportError:
        hub_constants, old_const = None, None
    try:
        yield
    finally:
        if hub_constants is not None:
            hub_constants.HF_HUB_OFFLINE = old_const
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


def fex_to_frame_aus(fex, row: int) -> FrameAUs:
    """One row of a py-feat Fex/DataFrame -> FrameAUs in our vocabulary (AU ids, emotion names)."""
    from textualize.visual_cues.au_csv import pyfeat_au_columns, pyfeat_emotion_columns
    from textualize.visual_cues.au_vocabulary import normalize_au_id

    cols = [str(c).strip() for c in fex.columns]
    values = fex.iloc[row]
    aus = {normalize_au_id(c): float(values.iloc[cols.index(c)]) for c in pyfeat_au_columns(cols)}
    emotions = {e: float(values.iloc[cols.index(c)]) for e, c in pyfeat_emotion_columns(cols).items()}
    raw = {}
    for c in ("Pitch", "Roll", "Yaw", "FaceScore"):
        if c in cols:
            raw[c] = float(values.iloc[cols.index(c)])
    return FrameAUs(aus=aus, raw=raw, emotions=emotions)


def fex_boxes(fex) -> list[FaceBox | None]:
    out: list[FaceBox | None] = []
    for _, r in fex.iterrows():
        x, y, w, h = (float(r.get(c, np.nan)) for c in ("FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight"))
        if not np.isfinite([x, y, w, h]).all():
            out.append(None)
        else:
            out.append(FaceBox(x, y, x + w, y + h, float(r.get("FaceScore", 1.0))))
    return out


@AU_BACKENDS.register("pyfeat")
class PyFeatAUBackend:
    """py-feat's AU classifiers (``probability``, 20 AUs) and emotion probabilities."""

    name = "pyfeat"
    kind = "frames"
    scale = "probability"
    au_names = list(PYFEAT_AUS)
    emotion_names = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
    raw_names = ["Pitch", "Roll", "Yaw", "FaceScore"]
    raw_scale = "Pitch/Roll/Yaw: py-feat head pose (degrees); FaceScore: face detection probability"
    model = "py-feat Detectorv1 (retinaface, mobilefacenet, xgb AUs, resmasknet emotions)"

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu", *, offline: bool | None = None,
                 face_detection_threshold: float = 0.5):
        """``offline``: True = cache only (fails fast with the list of missing files), False = may
        download, None = offline when ``HF_HUB_OFFLINE`` is set or the cache already holds
        everything (so a filled cache never touches the network)."""
        resource_dir = pyfeat_resource_dir()
        if resource_dir is None:
            raise ModelUnavailableError("py-feat is not installed: pip install --no-deps py-feat==2.1.5")
        missing = missing_pyfeat_weights(resource_dir)
        env_offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        if offline is None:
            offline = env_offline or not missing
        if offline and missing:
            raise ModelUnavailableError(_how_to_fill(missing, resource_dir))
        self.device = device
        self.face_detection_threshold = face_detection_threshold
        self.detector = self._load_detector(offline, resource_dir)

    def _load_detector(self, offline: bool, resource_dir: Path):
        import torch

        try:
            # py-feat's RetinaFace constructor calls torch.set_grad_enabled(False) process-wide;
            # set_grad_enabled as a context restores the caller's mode (training after extraction)
            with _hub_offline(offline), torch.set_grad_enabled(torch.is_grad_enabled()):
                from feat.detector import Detectorv1

                return Detectorv1(face_model="retinaface", landmark_model="mobilefacenet", au_model="xgb",
                                  emotion_model="resmasknet", identity_model=None, gaze_model=None, device=self.device)
        except (OSError, ValueError, RuntimeError) as e:  # hub misses are OSError subclasses
            from_hub = type(e).__module__.startswith(("huggingface_hub", "requests", "urllib3")) or isinstance(e, FileNotFoundError)
            if not from_hub:
                raise
            missing = missing_pyfeat_weights(resource_dir) or ["(a file py-feat asked the hub for)"]
            raise ModelUnavailableError(f"{_how_to_fill(missing, resource_dir)} [{type(e).__name__}: {str(e)[:200]}]") from None

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return f"py-feat {version('py-feat')}"

    @property
    def params(self) -> dict:
        return {"face_detection_threshold": self.face_detection_threshold, "min_iou": MIN_IOU}

    def reset(self) -> None:
        """py-feat analyses each frame independently: nothing to forget between clips."""

    def detect(self, rgb: np.ndarray):
        """py-feat's Fex for one RGB frame (all faces)."""
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(rgb[..., :3])).permute(2, 0, 1).unsqueeze(0)
        with torch.inference_mode():
            return self.detector.detect(tensor, data_type="tensor", progress_bar=False,
                                        face_detection_threshold=self.face_detection_threshold)

    def analyze(self, frame: Frame, box: FaceBox) -> FrameAUs | None:
        """The py-feat face that best overlaps ``box`` (None when py-feat finds none there)."""
        from textualize.visual_cues.face_tracking import iou

        fex = self.detect(frame.rgb)
        best, best_iou = None, MIN_IOU
        for i, b in enumerate(fex_boxes(fex)):
            if b is not None and iou(box, b) >= best_iou:
                best, best_iou = i, iou(box, b)
        if best is None:
            return None
        return fex_to_frame_aus(fex, best)

    def from_table(self, path: str) -> FacialCues | MissingCue:
        raise NotImplementedError("the pyfeat backend analyses frames; use the 'csv' backend for Fex CSV files")
