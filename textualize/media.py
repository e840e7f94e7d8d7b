"""Decoding of audio and video with PyAV: probing, audio as 16 kHz mono, frames streamed at a fps.

Frames are yielded one at a time from the demuxer, so memory stays flat however long the video.
Frames come out as displayed: a container's display matrix (how phones store portrait video:
sensor-landscape frames plus "rotate 90° to show") is applied like FFmpeg's autorotate, which
PyAV does not do. Every failure is a ``MediaError`` subclass with a message naming the file, never
a raw FFmpeg exception from deep inside a library.
"""
from __future__ import annotations

import errno
import hashlib
import math
import os
import stat
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from textualize.cues import MediaInfo

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus", ".au", ".aif", ".aiff", ".amr", ".wma"}


class MediaError(RuntimeError):
    """A clip that cannot be decoded; the message says which file and why."""


class NoAudioTrackError(MediaError):
    pass


class NoVideoTrackError(MediaError):
    pass


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def input_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a media file (broken or looping link, missing, a folder,
    unreadable), or None. Never raises: every OS error becomes the reason."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"{path}: symbolic link loop ({e.strerror})"
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            return f"{path}: broken symbolic link to {target} ({e.strerror})"
        if e.errno == errno.ENOENT:
            return f"{path}: file not found"
        return f"{path}: cannot be read ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return f"{path}: is a folder, not a media file"
    if not stat.S_ISREG(st.st_mode):  # reading a FIFO or a device would block or never end
        return f"{path}: not a regular file (a FIFO, device or socket)"
    if not os.access(path, os.R_OK):
        return f"{path}: permission denied"
    return None


def _open(path: str | Path):
    import av

    path = Path(path)
    problem = input_problem(path)
    if problem:
        raise MediaError(problem)
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file")
    try:
        return av.open(str(path))
    except Exception as e:  # av.error.InvalidDataError and friends
        raise MediaError(f"{path}: cannot be decoded ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------- display matrix (rotation)


@dataclass(frozen=True)
class DisplayTransform:
    """How a stored frame becomes the displayed one. ``rotation_deg`` is the display rotation as
    ffprobe reports it (counter-clockwise, -180..180]; ``op`` one of FFmpeg's autorotate
    operations ("", "clock", "cclock", "hvflip"; the flips and transposes also serve EXIF
    orientations of photos); ``applied`` False for an angle that is not a multiple of 90° (the
    frame is left as stored, and the record says so)."""

    rotation_deg: float = 0.0
    op: str = ""
    applied: bool = True

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        op = self.op if self.applied else ""
        if not op:
            return rgb
        out = {
            "clock": lambda a: np.rot90(a, -1),
            "cclock": lambda a: np.rot90(a, 1),
            "cclock_flip": lambda a: a.transpose(1, 0, *range(2, a.ndim)),
            "clock_flip": lambda a: np.rot90(a, -1)[::-1],
            "hflip": lambda a: a[:, ::-1],
            "vflip": lambda a: a[::-1],
            "hvflip": lambda a: a[::-1, ::-1],
        }[op](rgb)
        return np.ascontiguousarray(out)

    @property
    def swaps_axes(self) -> bool:
        return self.applied and self.op in ("clock", "cclock", "clock_flip", "cclock_flip")


NO_TRANSFORM = DisplayTransform()


def rotation_transform(rotation_deg: float) -> DisplayTransform:
    """The transform that shows a frame whose display matrix rotates it by ``rotation_deg``
    (counter-clockwise, as ``VideoFrame.rotation`` and ffprobe report it), as FFmpeg's autorotate."""
    ccw = float(rotation_deg) % 360.0
    deg = ccw - 360.0 if ccw > 180 else ccw
    quarter = round(ccw / 90.0)
    if abs(ccw - 90.0 * quarter) >= 1:  # not a right angle: left as stored, and said so
        return DisplayTransform(rotation_deg=round(deg, 2), op="", applied=False)
    op = ("", "cclock", "hvflip", "clock")[quarter % 4]
    return DisplayTransform(rotation_deg=round(deg, 2), op=op) if op else NO_TRANSFORM


def frame_transform(frame) -> DisplayTransform:
    """The display transform of a decoded PyAV frame, from its display-matrix rotation (FFmpeg
    copies the container's matrix onto each frame).

    Read through ``VideoFrame.rotation`` only: PyAV's ``frame.side_data`` crashes the process on
    side-data types it does not know (e.g. EXIF on PNG frames from FFmpeg 8), so mirror flags in a
    matrix (never written by phones, which rotate only) are not read."""
    try:
        rotation = frame.rotation
    except Exception:  # an older PyAV without the accessor: as stored
        return NO_TRANSFORM
    return rotation_transform(rotation) if rotation else NO_TRANSFORM


# EXIF orientation tag (1-8) -> the same transform (phone photos store it there, not in a matrix)
EXIF_ORIENTATION = {1: ("", 0.0), 2: ("hflip", 180.0), 3: ("hvflip", 180.0), 4: ("vflip", 0.0),
                    5: ("cclock_flip", -90.0), 6: ("clock", -90.0), 7: ("clock_flip", 90.0), 8: ("cclock", 90.0)}


def exif_transform(path: str | Path) -> DisplayTransform:
    """Display transform from a still image's EXIF orientation tag (1-8)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            orientation = int(im.getexif().get(0x0112, 1))
    except Exception:  # no EXIF, not an image PIL reads: as stored
        return NO_TRANSFORM
    op, deg = EXIF_ORIENTATION.get(orientation, ("", 0.0))
    return DisplayTransform(rotation_deg=deg, op=op) if op else NO_TRANSFORM


def _transform_of(frame, path: Path) -> DisplayTransform:
    """Photos: their EXIF orientation, read exactly with Pillow (FFmpeg 8 turns it into a display
    matrix for some formats, whose mirror flags ``frame_transform`` cannot read). Video: the
    frame's display rotation."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        display = exif_transform(path)
        if display.op:
            return display
    return frame_transform(frame)


def video_transform(path: str | Path) -> DisplayTransform:
    """Display transform of a file's first video stream (read from its first decodable frame)."""
    import av

    path = Path(path)
    try:
        with _open(path) as container:
            if not container.streams.video:
                return NO_TRANSFORM
            for frame in container.decode(container.streams.video[0]):
                return _transform_of(frame, path)
    except (MediaError, av.error.FFmpegError):
        pass
    return NO_TRANSFORM


def probe(path: str | Path, content_sha256: str | None = None) -> MediaInfo:
    """Container-level facts about a clip (tracks, duration, fps, codecs)."""
    path = Path(path)
    with _open(path) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        video = container.streams.video[0] if container.streams.video else None
        duration = float(container.duration / 1_000_000) if container.duration else math.nan
        if video is not None and video.duration and video.time_base:
            duration = float(video.duration * video.time_base) if math.isnan(duration) else duration
        fps = 0.0
        if video is not None:
            rate = video.average_rate or video.base_rate or video.guessed_rate
            fps = float(rate) if rate else 0.0
        is_image = path.suffix.lower() in IMAGE_SUFFIXES
        width = int(video.codec_context.width or 0) if video is not None else 0
        height = int(video.codec_context.height or 0) if video is not None else 0
    transform = video_transform(path) if video is not None else NO_TRANSFORM
    if transform.swaps_axes:
        width, height = height, width
    return MediaInfo(
        path=str(path),
        content_sha256=content_sha256 or sha256_file(path),
        duration_s=0.0 if is_image else duration,
        has_audio=audio is not None,
        has_video=video is not None,
        video_fps=0.0 if is_image else fps,
        video_codec=video.codec_context.name if video is not None else "",
        audio_codec=audio.codec_context.name if audio is not None else "",
        audio_sample_rate=int(audio.codec_context.sample_rate or 0) if audio is not None else 0,
        width=width,
        height=height,
        rotation_deg=transform.rotation_deg,
    )


def load_audio(path: str | Path, sample_rate: int = 16_000) -> np.ndarray:
    """First audio track as float32 mono at ``sample_rate`` (resampled by FFmpeg's swresample)."""
    import av

    with _open(path) as container:
        if not container.streams.audio:
            raise NoAudioTrackError(f"{path}: no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            if not chunks:
                raise MediaError(f"{path}: audio cannot be decoded ({e})") from None
            # a truncated tail: keep what decoded, as players do
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return audio


@dataclass
class Frame:
    index: int  # index among the sampled frames
    time_s: float
    rgb: np.ndarray  # H x W x 3 uint8, as displayed (display matrix applied)
    display: DisplayTransform = NO_TRANSFORM  # what was applied to the stored frame


def iter_frames(path: str | Path, fps: float = 5.0, max_side: int | None = None) -> Iterator[Frame]:
    """Yield RGB frames sampled at ``fps`` (by presentation time, so 24/30/120 fps sources and
    variable frame rates all give the same sampling grid). Images yield one frame at t=0.

    ``max_side`` downsizes in FFmpeg's scaler before conversion, which is cheaper than resizing
    numpy arrays afterwards. The display matrix, if any, is applied (``Frame.display`` says how).
    """
    import av

    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise NoVideoTrackError(f"{path}: no video track")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        period = 1.0 / fps if fps > 0 else 0.0
        next_t = 0.0
        index = 0
        time_base = stream.time_base or Fraction(1, 1000)
        start = stream.start_time or 0
        try:
            for frame in container.decode(stream):
                pts = frame.pts if frame.pts is not None else frame.dts
                t = float((pts - start) * time_base) if pts is not None else index * period
                if period and t + 1e-6 < next_t:
                    continue
                width, height = frame.width, frame.height
                if max_side and max(width, height) > max_side:
                    scale = max_side / max(width, height)
                    width, height = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
                    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
                else:
                    rgb = frame.to_ndarray(format="rgb24")
                display = _transform_of(frame, path)
                yield Frame(index=index, time_s=max(t, 0.0), rgb=display(rgb), display=display)
                index += 1
                if period:
                    while next_t <= t + 1e-6:
                        next_t += period
        except av.error.FFmpegError as e:
            if index == 0:
                raise MediaError(f"{path}: video cannot be decoded ({e})") from None
            # a truncated tail: keep the frames that decoded
