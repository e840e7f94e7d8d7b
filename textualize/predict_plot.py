"""Explanation figure of one prediction (``textualize predict --plot``): what the model saw and
how sure it was. Panels: the face crop (or a key frame; "no face" said so), bars of the class
probabilities with the normalised entropy and the ensemble's spread beside them, the prompt of
each text run, and for feature runs the per-frame class probabilities over time."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np


def key_frame(path: str | Path, face: dict[str, Any]) -> tuple[np.ndarray | None, str]:
    """The face crop at the most confident detection (with a margin), else the middle frame of a
    video or the image; None with a reason for audio-only inputs."""
    from textualize.media import MediaError, iter_frames

    box = face.get("face_box")
    want_t = box["time_s"] if box else None
    frames = []
    try:
        fps = 5.0
        for fr in iter_frames(path, fps=fps):
            if want_t is not None and abs(fr.time_s - want_t) < 0.5 / fps + 1e-3:
                frames = [fr]
                break
            frames.append(fr)
            if want_t is None and len(frames) > 50:
                break
    except MediaError as e:
        return None, str(e).split(": ", 1)[-1]
    if not frames:
        return None, "no video frames"
    frame = frames[-1] if want_t is not None else frames[len(frames) // 2]
    rgb = frame.rgb
    if box:
        fw, fh = box.get("frame_size") or (0, 0)
        sx = rgb.shape[1] / fw if fw else 1.0
        sy = rgb.shape[0] / fh if fh else 1.0
        x1, y1, x2, y2 = box["box"]
        mx, my = 0.25 * (x2 - x1), 0.25 * (y2 - y1)
        a, b = int(max(0, (y1 - my) * sy)), int(min(rgb.shape[0], (y2 + my) * sy))
        c, d = int(max(0, (x1 - mx) * sx)), int(min(rgb.shape[1], (x2 + mx) * sx))
        if b > a and d > c:
            return rgb[a:b, c:d], f"face at {frame.time_s:.1f} s"
    return rgb, "key frame (no face)" if not face.get("face") else f"frame at {frame.time_s:.1f} s"


def face_title(row: dict[str, Any], caption: str) -> str:
    """The face panel's title: which face (one of several), or "no face" and why, wrapped to the panel."""
    if not row.get("face"):
        reason = str(row.get("face_reason") or caption)
        reason = reason.split(": ", 1)[1] if reason.startswith("no_face: ") else reason
        return "\n".join(textwrap.wrap(f"no face: {reason}", 34)[:3])
    if row.get("face_index"):
        return f"face {row['face_index']} of {row['faces_in_image']} ({caption})"
    if row.get("faces_max", 1) > 1:
        return f"main face of {row['faces_max']} ({caption})"
    return caption


def plot_prediction(result: dict[str, Any], out_path: str | Path) -> Path:
    """Write the figure of one ``predict_batch`` result as a PNG (atomic); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from textualize.manifest import atomic_write_bytes
    from textualize.predict import face_summary

    row, details, classes = result["row"], result["details"], result["classes"]
    face = face_summary(result["clip"])
    image, caption = key_frame(row["path"], face)
    texts = [d for d in details if d["approach"] == "text"]
    frames = [d for d in details if d["approach"] == "feature" and len(d.get("frame_times", [])) > 1]
    heights = [1.0] + ([0.22 + 0.12 * len(texts)] if texts else []) + ([0.9] if frames else [])
    fig = plt.figure(figsize=(11, 3.6 * sum(heights)), dpi=90)
    grid = fig.add_gridspec(len(heights), 3, width_ratios=[1, 1.6, 1.1], height_ratios=heights)

    ax = fig.add_subplot(grid[0, 0])
    ax.axis("off")
    title = face_title(row, caption)
    if image is not None:
        ax.imshow(image)
    else:
        ax.text(0.5, 0.5, "no face", ha="center", va="center", fontsize=12, color="firebrick")
    ax.set_title(title, fontsize=8 if "\n" in title else 9, color="firebrick" if not row.get("face") else "black")

    ax = fig.add_subplot(grid[0, 1])
    probs = np.asarray([row["probs"][c] for c in classes])
    y = np.arange(len(classes))
    ax.barh(y, probs, color=["tab:blue" if c == row["prediction"] else "tab:gray" for c in classes], alpha=0.85)
    for m, d in enumerate(details if len(details) > 1 else []):
        ax.scatter(d["probs"], y, marker="|", s=200, label=d["run"], zorder=3)
    ax.set_yticks(y, classes)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_title(f"{row['id']}: {row['prediction']}", fontsize=10)
    if len(details) > 1:
        ax.legend(fontsize=7, loc="lower right", title="members", title_fontsize=7)

    ax = fig.add_subplot(grid[0, 2])
    names, values = ["entropy"], [row["entropy"]]
    if "entropy_calibrated" in row:
        names.append("entropy (calibrated)")
        values.append(row["entropy_calibrated"])
    if "spread" in row:
        names += ["members' SD", "epistemic"]
        values += [row["spread"]["std"], row["spread"]["epistemic"]]
    ax.bar(range(len(values)), values, color="tab:orange")
    ax.set_xticks(range(len(values)), names, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.12)  # room for the value above a bar at 1
    ax.set_title("uncertainty (0 = certain)", fontsize=10)
    for k, v in enumerate(values):
        ax.text(k, v + 0.02, f"{v:.2f}", ha="center", fontsize=8)

    r = 1
    if texts:
        ax = fig.add_subplot(grid[r, :])
        ax.axis("off")
        body = "\n\n".join(f"[{d['run']}] " + "\n".join(textwrap.wrap(d["prompt"].replace("\n", " "), 150)) for d in texts)
        ax.text(0, 1, body, va="top", ha="left", fontsize=8, family="monospace")
        ax.set_title("prompt(s) the text run(s) saw", fontsize=10, loc="left")
        r += 1
    if frames:
        ax = fig.add_subplot(grid[r, :])
        d = frames[0]
        t = np.asarray(d["frame_times"])
        fp = np.asarray(d["frame_probs"])
        for k, c in enumerate(classes):
            ax.plot(t, fp[:, k], label=c, lw=2 if c == row["prediction"] else 1)
        absent = ~np.asarray(d["frame_present"], bool)
        if absent.any():
            ax.fill_between(t, 0, 1, where=absent, color="0.85", step="mid", label="no stream data")
        ax.set_ylim(0, 1)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("probability")
        ax.set_title(f"per-frame probabilities of {d['run']}", fontsize=10)
        ax.legend(fontsize=7, ncol=4, loc="upper right")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    out_path = Path(out_path)
    atomic_write_bytes(out_path, buf.getvalue())
    return out_path
