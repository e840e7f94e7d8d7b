"""Prompts per second: cached cue records -> converters -> Jinja2 template (one CPU core).

Cue records: the 20 real py-feat news tables (../shared) as FacialCues, round-tripped through the
JSON cue cache format; MELD dev utterances and dialogue context as text (../shared, else the
CREMA-D sentence); prosody measures drawn around typical adult-speech values with NormStats
fitted on them. Rates are per CPU-second of this process (``time.process_time``, one core) and
per wall-second (depends on what else the machine runs). Usage: python bench/bench_render.py [--n 20000]
"""
from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textualize.converters import textualize_sample  # noqa: E402
from textualize.converters.config import TextualizeConfig, TranscriptConfig  # noqa: E402
from textualize.converters.transcript import clean_text  # noqa: E402
from textualize.corpora.base import Sample  # noqa: E402
from textualize.cues import MissingCue, ProsodyCues, ProsodyMeasures, from_json, to_json  # noqa: E402
from textualize.normalization import fit_norm_stats  # noqa: E402
from textualize.templates import load_template  # noqa: E402

CLASSES = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]


def load_faces(shared: Path) -> list:
    from textualize.registry import AU_BACKENDS

    backend = AU_BACKENDS.get("pyfeat-csv")(fps=25.0)
    faces = [backend.from_table(str(p)) for p in sorted((shared / "data/pyfeat_news_sample").glob("[0-9]*.csv"))]
    faces = [from_json(to_json(f)) for f in faces]  # as read back from the cue cache
    return faces + [MissingCue("no_face")]


def load_texts(shared: Path) -> list[tuple[str, str, list[tuple[str, str]]]]:
    path = shared / "data/meld/dev_sent_emo.csv"
    if not path.exists():
        return [("Speaker", "Don't forget a jacket.", [])]
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    out, history, dialogue = [], [], None
    for r in rows:
        if r["Dialogue_ID"] != dialogue:
            history, dialogue = [], r["Dialogue_ID"]
        out.append((r["Speaker"], r["Utterance"], list(history)))
        history.append((r["Speaker"], r["Utterance"]))
    return out


def prosody_rows(n: int, rng: random.Random) -> list[tuple[str, ProsodyMeasures]]:
    rows = []
    for i in range(n):
        spk = f"s{i % 6}"
        st = rng.gauss(36.0 if i % 2 else 26.0, 1.5)
        rows.append((spk, ProsodyMeasures(
            start_s=0.0, end_s=3.0, pitch_mean_hz=27.5 * 2 ** (st / 12), pitch_mean_st=st,
            pitch_sd_st=abs(rng.gauss(2.5, 0.8)), loudness_mean=abs(rng.gauss(0.9, 0.3)),
            loudness_sd=abs(rng.gauss(0.5, 0.15)), speaking_rate_syl_per_s=rng.gauss(4.5, 0.8),
            pause_count=float(rng.randint(0, 3)), pause_ratio=rng.uniform(0.0, 0.3),
            jitter_local=abs(rng.gauss(0.02, 0.006)), shimmer_local_db=abs(rng.gauss(1.1, 0.25)),
            hnr_db=math.nan if i % 17 == 0 else rng.gauss(8.0, 2.5),
        )))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    shared = Path(REPO.parent / "shared")
    rng = random.Random(0)
    faces = load_faces(shared) if (shared / "data/pyfeat_news_sample").exists() else [MissingCue("no_face")]
    texts = load_texts(shared)
    pros = prosody_rows(600, rng)
    ns = fit_norm_stats([(s, {k: getattr(m, k) for k in ("pitch_mean_st", "pitch_sd_st", "loudness_mean", "loudness_sd",
                                                          "speaking_rate_syl_per_s", "pause_ratio", "jitter_local",
                                                          "shimmer_local_db", "hnr_db")}) for s, m in pros])
    samples = []
    for i in range(args.n):
        speaker, utt, ctx = texts[i % len(texts)]
        spk, m = pros[i % len(pros)]
        samples.append((
            Sample(id=f"s{i}", label="joy", split="test", speaker=speaker, transcript=utt, context=ctx),
            {"face": faces[i % len(faces)], "prosody": ProsodyCues(clip=m)},
        ))
    print(f"{args.n} samples: {len(faces)} face records (real py-feat tables), {len(texts)} distinct MELD "
          f"utterances, {len(pros)} prosody records")
    configs = {
        "words": TextualizeConfig(),
        "words+context3": TextualizeConfig(transcript=TranscriptConfig(context_turns=3)),
        "numeric": TextualizeConfig(mode="numeric"),
    }
    for tid in ("paper_v1", "speech_cues_v1", "dialogue_v1"):
        template = load_template(tid)
        for cname, cfg in configs.items():
            if cname == "words+context3" and tid != "dialogue_v1":
                continue
            clean_text.cache_clear()  # first pass cleans every distinct utterance
            t0, c0 = time.perf_counter(), time.process_time()
            for s, cues in samples:
                template.render_text(textualize_sample(s, cues, cfg, ns), ("text", "face", "voice"), CLASSES)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            t1, c1 = time.perf_counter(), time.process_time()
            for s, cues in samples:
                f = textualize_sample(s, cues, cfg, ns)
                template.render_text(f, ("text", "face", "voice"), CLASSES)
                template.render_chat(f, ("text", "face", "voice"), CLASSES)
            dt2, dc2 = time.perf_counter() - t1, time.process_time() - c1
            print(f"{tid:15s} {cname:15s} text: {args.n / dc:7.0f} prompts/s CPU ({args.n / dt:7.0f} wall)   "
                  f"text+chat: {args.n / dc2:7.0f} samples/s CPU ({args.n / dt2:7.0f} wall)")
    # the parts, for the words config and paper_v1
    cfg, template = configs["words"], load_template("paper_v1")
    frags = [textualize_sample(s, c, cfg, ns) for s, c in samples]
    c0 = time.process_time()
    for f in frags:
        template.render_text(f, ("text", "face", "voice"), CLASSES)
    print(f"paper_v1 template only: {args.n / (time.process_time() - c0):8.0f} renders/s CPU")
    c0 = time.process_time()
    for s, c in samples:
        textualize_sample(s, c, cfg, ns)
    print(f"converters only (warm text cache): {args.n / (time.process_time() - c0):8.0f} samples/s CPU")
    print("example:\n" + template.render_text(frags[1], ("text", "face", "voice"), CLASSES))


if __name__ == "__main__":
    main()
