"""MELD (Poria et al., ACL 2019): multi-party dialogue utterances from *Friends*, 7 emotions.

Layout read (any of ``root``, ``root/*``, ``root/*/*`` may hold the CSVs, e.g. ``data/MELD/``):

* ``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv`` with the official columns
  Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode,
  StartTime, EndTime. ``dev`` becomes the split ``validation``. A split whose CSV is absent is
  left out with a notice.
* Optional videos, one per utterance (``dia{D}_utt{U}.mp4``), in the official folders
  ``train_splits/``, ``dev_splits_complete/``, ``output_repeated_splits_test/`` (searched in the
  root, the CSV's folder and their subfolders ``train/``, ``dev/``, ``test/``, ``MELD.Raw/``).
  Without a folder the split's rows are text-only (``media_path=None``,
  ``meta["media"]="absent"``) and a notice says so.

Ids are ``{split}_dia{D}_utt{U}`` (split-prefixed: dialogue ids restart in every split). StartTime/
EndTime locate the utterance in the *episode*; the official mp4s are already cut to the
utterance, so they go to ``meta["episode_start_s"/"episode_end_s"]``, not ``start_s``/``end_s``.
``context`` holds the previous ``context_size`` utterances (speaker, text) of the same dialogue in
Utterance_ID order.

Text clean-up (``clean_text``): the CSVs mix UTF-8 curly quotes with Windows-1252 bytes that were
decoded as Latin-1 ("\\x92") or as UTF-8-read-as-1252 mojibake ("â€™", "Â "); the toolkit's
transcript clean-up (ftfy) repairs them and makes quotes ASCII.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from textualize.corpora import AdapterBase, listed, map_labels, plural
from textualize.corpora.base import LabelMap, Sample
from textualize.registry import CORPORA

if TYPE_CHECKING:  # pandas is imported when an adapter runs, not when the registry scans
    import pandas as pd

MELD_CLASSES = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
# Common spellings of the same classes in other tools (all lower case; LabelMap lowercases keys).
MELD_ALIASES = {"happiness": "joy", "happy": "joy", "angry": "anger", "sad": "sadness", "surprised": "surprise",
                "disgusted": "disgust", "fearful": "fear"}

SPLIT_FILES = {"train": "train_sent_emo.csv", "validation": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
VIDEO_DIRS = {"train": "train_splits", "validation": "dev_splits_complete", "test": "output_repeated_splits_test"}
REQUIRED_COLUMNS = ["Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID"]

def clean_text(series: pd.Series) -> pd.Series:
    """The toolkit's one text clean-up (``converters.transcript.clean_text``: ftfy repair of the
    mojibake, ASCII quotes, whitespace), applied per utterance (cached: MELD repeats lines)."""
    from textualize.converters.transcript import clean_text as clean_one

    return series.fillna("").astype(str).map(clean_one)


def _read_csv(path: Path) -> tuple[pd.DataFrame, str]:
    """The official CSVs are UTF-8; some redistributed copies are Windows-1252."""
    import pandas as pd

    for encoding in ("utf-8", "cp1252"):
        try:
            return pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False), encoding
        except UnicodeDecodeError:
            continue
        except pd.errors.ParserError as e:
            raise ValueError(f"{path}: not a readable CSV ({e})") from None
    raise ValueError(f"{path}: neither UTF-8 nor Windows-1252 text")


def _episode_times(df: pd.DataFrame, column: str) -> pd.Series:
    """'00:16:16,059' -> seconds (vectorised); unparseable -> NaN."""
    import pandas as pd

    parts = df[column].str.strip().str.extract(r"^(\d+):(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?$")
    ms = parts[3].fillna("0").str.ljust(3, "0")
    seconds = (
        pd.to_numeric(parts[0], errors="coerce") * 3600
        + pd.to_numeric(parts[1], errors="coerce") * 60
        + pd.to_numeric(parts[2], errors="coerce")
        + pd.to_numeric(ms, errors="coerce") / 1000.0
    )
    return seconds.astype(float)


@CORPORA.register("meld")
class MELDAdapter(AdapterBase):
    """The official MELD CSVs (+ videos when present)."""

    name = "meld"

    def label_map(self) -> LabelMap:
        return LabelMap("meld", list(MELD_CLASSES), dict(MELD_ALIASES))

    # ------------------------------------------------------------------ layout
    @staticmethod
    def find_csv(root: Path, split: str) -> Path | None:
        name = SPLIT_FILES[split]
        for pattern in (name, f"*/{name}", f"*/*/{name}"):
            hits = sorted(root.glob(pattern))
            if hits:
                return hits[0]
        return None

    @staticmethod
    def find_video_dir(root: Path, csv_dir: Path, split: str) -> Path | None:
        name = VIDEO_DIRS[split]
        short = {"train": "train", "validation": "dev", "test": "test"}[split]
        for base in dict.fromkeys([root, csv_dir, root / "MELD.Raw", csv_dir.parent]):
            for candidate in (base / name, base / short / name, base / "MELD.Raw" / name):
                if candidate.is_dir():
                    return candidate
        return None

    # ------------------------------------------------------------------ samples
    def samples(
        self,
        root: Path | str,
        splits: tuple[str, ...] = ("train", "validation", "test"),
        context_size: int = 3,
        require_media: bool = False,
        bad_times: str = "error",
    ) -> list[Sample]:
        """Every MELD utterance under ``root``.

        ``context_size``: previous utterances of the dialogue kept as context (0 = none).
        ``require_media``: a missing mp4 (in a present video folder) is an error, not a warning.
        ``bad_times``: "error" (default) or "warn" for unparseable StartTime/EndTime (kept as NaN).
        """
        self.notices = []
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"meld: root {root} is not a folder")
        if bad_times not in ("error", "warn"):
            raise ValueError(f"meld: bad_times must be 'error' or 'warn', not {bad_times!r}")
        if context_size < 0:
            raise ValueError(f"meld: context_size must be >= 0, not {context_size}")
        label_map = self.label_map()
        out: list[Sample] = []
        found_any = False
        for split in splits:
            if split not in SPLIT_FILES:
                raise ValueError(f"meld: unknown split {split!r}; choose from {', '.join(SPLIT_FILES)}")
            csv_path = self.find_csv(root, split)
            if csv_path is None:
                self.notice(f"{split}: {SPLIT_FILES[split]} not found under {root}; split left out")
                continue
            found_any = True
            out.extend(self._split_samples(csv_path, root, split, label_map, context_size, bad_times))
        if not found_any:
            raise ValueError(
                f"meld: none of {', '.join(SPLIT_FILES[s] for s in splits)} found under {root} (or its subfolders)"
            )
        return self.finish(out, label_map, require_media=require_media)

    def _split_samples(
        self, csv_path: Path, root: Path, split: str, label_map: LabelMap, context_size: int, bad_times: str
    ) -> list[Sample]:
        import pandas as pd

        df, encoding = _read_csv(csv_path)
        if encoding != "utf-8":
            self.notice(f"{split}: {csv_path.name} is not UTF-8; read as Windows-1252")
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(missing)} (has: {', '.join(df.columns)})")
        for col in ("Dialogue_ID", "Utterance_ID"):
            ids = pd.to_numeric(df[col].str.strip(), errors="coerce")
            bad = ids.isna() | (ids % 1 != 0)
            if bad.any():
                rows = [f"line {i + 2}: {df[col].iloc[i]!r}" for i in bad.to_numpy().nonzero()[0]]
                raise ValueError(f"{csv_path}: non-integer {col} at {listed(rows)}")
            df[col] = ids.astype(int)
        df = df.sort_values(["Dialogue_ID", "Utterance_ID"], kind="stable").reset_index(drop=True)

        text = clean_text(df["Utterance"])
        speaker = clean_text(df["Speaker"])
        dia = df["Dialogue_ID"].to_numpy()
        utt = df["Utterance_ID"].to_numpy()
        ids = [f"{split}_dia{d}_utt{u}" for d, u in zip(dia, utt)]
        labels = map_labels(df["Emotion"].str.strip().tolist(), ids, label_map, str(csv_path))

        times = {}
        for col in ("StartTime", "EndTime"):
            if col not in df.columns:
                times[col] = [math.nan] * len(df)
                continue
            t = _episode_times(df, col)
            bad = t.isna()
            if bad.any():
                rows = [f"{ids[i]} {df[col].iloc[i]!r}" for i in bad.to_numpy().nonzero()[0]]
                msg = f"{csv_path.name}: {plural(int(bad.sum()), 'malformed ' + col)} (expected hh:mm:ss,ms): {listed(rows)}"
                if bad_times == "error":
                    raise ValueError(f"{csv_path}: {msg} — pass bad_times='warn' to keep them as NaN")
                self.notice(f"{split}: {msg}; kept as NaN")
            times[col] = t.tolist()

        video_dir = self.find_video_dir(root, csv_path.parent, split)
        if video_dir is None:
            self.notice(
                f"{split}: video folder {VIDEO_DIRS[split]}/ not found; {plural(len(df), 'text-only sample')} "
                f"(media_path=None, meta['media']='absent')"
            )
        optional = {c: df[c].tolist() for c in ("Sentiment", "Season", "Episode", "Sr No.") if c in df.columns}

        text_l, speaker_l = text.tolist(), speaker.tolist()
        out: list[Sample] = []
        start_of_dialogue = 0
        for i in range(len(df)):
            if i and dia[i] != dia[i - 1]:
                start_of_dialogue = i
            lo = max(start_of_dialogue, i - context_size)
            context = [(speaker_l[j], text_l[j]) for j in range(lo, i)] if context_size else []
            meta = {
                "dialogue_id": int(dia[i]),
                "utterance_id": int(utt[i]),
                "episode_start_s": times["StartTime"][i],
                "episode_end_s": times["EndTime"][i],
                "media": "present" if video_dir is not None else "absent",
            }
            for key, values in optional.items():
                meta[key.lower().replace(" ", "_").replace(".", "")] = values[i]
            media_path = str(video_dir / f"dia{dia[i]}_utt{utt[i]}.mp4") if video_dir is not None else None
            out.append(
                Sample(
                    id=ids[i], label=labels[i], split=split, media_path=media_path,
                    speaker=speaker_l[i], transcript=text_l[i], context=context, meta=meta,
                )
            )
        if video_dir is not None:
            missing_files = [s for s in out if not Path(s.media_path).exists()]
            for s in missing_files:
                s.meta["media"] = "missing"
        return out
