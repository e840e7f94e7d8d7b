"""One figure per clip: what the extractors measured over time, to check cues by eye.

Top: the strongest AUs of the main face (on their own scale), with frames without a face shaded.
Bottom: the pitch contour (Hz, voiced frames) and loudness from the audio LLD sequence, with the
transcript's words at their timestamps. Reads the extract stage's JSON and .npz, writes a PNG.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from textualize.cues import ClipCues, FacialCues, MissingCue, Transcript
from textualize.extract import load_clip, sequence_path
from textualize.manifest import atomic_write_bytes

PITCH_NAMES = ("F0semitoneFrom27.5Hz_sma3nz", "f0_st")  # openSMILE, librosa LLD names
LOUDNESS_NAMES = ("Loudness_sma3", "rms_dbfs")


def _column(names: list[str], values: np.ndarray, candidates: tuple[str, ...]) -> tuple[str, np.ndarray] | None:
    for c in candidates:
        if c in names:
            return c, values[:, names.index(c)].astype(float)
    return None


def plot_clip(cue_dir: str | Path, clip_id: str, out_png: str | Path, top_aus: int = 6) -> Path:
    """Write the clip's cue timeline to ``out_png`` and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cue_dir, out_png = Path(cue_dir), Path(out_png)
    clip: ClipCues = load_clip(cue_dir, clip_id)
    seq = dict(np.load(sequence_path(cue_dir, clip_id))) if sequence_path(cue_dir, clip_id).exists() else {}
    fig, (ax_face, ax_voice) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, constrained_layout=True)
    fig.suptitle(f"{clip.clip_id}  ({clip.media.duration_s:.1f} s)")

    face = clip.face
    if isinstance(face, FacialCues) and face.times_s:
        t = np.asarray(face.times_s, float)
        values = np.asarray(face.au_values, float)
        peaks = np.nan_to_num(np.nanmax(np.where(np.isfinite(values), values, -np.inf), axis=0), neginf=-1)
        for k in np.argsort(-peaks)[:top_aus]:
            ax_face.plot(t, values[:, k], marker=".", label=face.au_names[k])
        for ti, present in zip(t, face.face_present):
            if not present:
                ax_face.axvspan(ti - 0.5 / max(face.sampled_fps, 1), ti + 0.5 / max(face.sampled_fps, 1), color="0.9")
        ax_face.set_ylabel(f"AU ({face.au_scale})")
        ax_face.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        ax_face.set_title(f"face: {face.provenance.backend if face.provenance else ''}, "
                          f"present in {sum(face.face_present)}/{len(t)} frames", fontsize=9)
    else:
        reason = face.reason if isinstance(face, MissingCue) else "no frames"
        ax_face.text(0.5, 0.5, f"face: {reason}", ha="center", va="center", transform=ax_face.transAxes)
        ax_face.set_yticks([])

    names = [str(n) for n in seq.get("audio_lld_names", [])]
    if names:
        lld = seq["audio_lld"]
        t = np.arange(len(lld)) * float(seq["audio_lld_hop_s"])
        pitch = _column(names, lld, PITCH_NAMES)
        if pitch is not None:
            st = np.where(pitch[1] > 0, pitch[1], np.nan)  # 0 marks unvoiced frames
            ax_voice.plot(t, 27.5 * 2 ** (st / 12), color="tab:blue", lw=1.2, label="pitch (Hz)")
            ax_voice.set_ylabel("pitch (Hz)")
        loud = _column(names, lld, LOUDNESS_NAMES)
        if loud is not None:
            twin = ax_voice.twinx()
            twin.plot(t, loud[1], color="tab:orange", lw=0.8, alpha=0.7)
            twin.set_ylabel("loudness (sone)" if loud[0].startswith("Loudness") else "level (dBFS)", color="tab:orange")
    else:
        reason = clip.prosody.reason if isinstance(clip.prosody, MissingCue) else "no LLD sequence saved"
        ax_voice.text(0.5, 0.5, f"voice: {reason}", ha="center", va="center", transform=ax_voice.transAxes)
    transcript = clip.transcript
    if isinstance(transcript, Transcript):
        for w in transcript.words:
            mid = (w.start_s + w.end_s) / 2
            ax_voice.axvline(w.start_s, color="0.75", lw=0.8, zorder=0)
            ax_voice.annotate(w.text.strip(), (mid, 1.0), xycoords=("data", "axes fraction"), ha="center",
                              va="bottom", fontsize=8, rotation=30)
    else:
        ax_voice.set_title(f"transcript: {transcript.reason}", fontsize=9)
    ax_voice.set_xlabel("time (s)")
    if math.isfinite(clip.media.duration_s) and clip.media.duration_s > 0:
        ax_voice.set_xlim(0, clip.media.duration_s)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(out_png, buf.getvalue())
    return out_png
