"""Where cue extraction runs: local processes, a Dask cluster, Ray, or SLURM job arrays (submitit).

The driver (``textualize.extract.run_extraction``) is the same for every engine: it submits chunks
of clips, collects per-clip results, writes failures and the manifest, and draws the progress bar.
An engine only decides where ``run_chunk`` runs. Engines are registered by name (``EXECUTORS``),
so adding one touches this file only.

Guarantees shared by all engines:

- models load once per worker process (``worker_extractor``: a process-wide cache keyed by the
  config hash), not once per clip;
- each clip's cues are written atomically into the shared cue folder by the worker (``save_clip``),
  so the driver never ships arrays back, and a clip is either complete on disk or absent;
- a worker that dies (killed, pre-empted, out of memory) loses only its chunk's *result*: the
  driver resubmits the chunk (``max_retries``), and the new attempt re-checks the cache before
  each clip, so clips the dead worker finished are reported, not redone, and the rest are done
  once. Dask and Ray also reschedule a dead worker's task on their own; SLURM pre-emption requeues
  the array task (submitit ``Checkpointable``), which resumes the same way.
"""
from __future__ import annotations

import math
import os
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from textualize.registry import Registry

EXECUTORS: Registry = Registry("executor", ())  # entries are registered below, in this module

# One task = (clip_id, path, content sha256, stale parts); a chunk is a list of them.
Task = tuple[str, str, str, set]


class ExecutorUnavailableError(RuntimeError):
    """An engine whose library is not installed, or that cannot start; the message says what to do."""


# ---------------------------------------------------------------- worker side


_EXTRACTORS: dict[tuple, Any] = {}
_LOADS = 0  # extractors built in this process (models loaded once per worker: tests check it)
_LOCK = threading.Lock()


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` where this worker sees a GPU (SLURM/Ray set CUDA_VISIBLE_DEVICES per
    task), else ``cpu``."""
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def worker_extractor(config, device: str = "cpu", threads: int | None = None):
    """This process's ``CueExtractor`` for ``config``, built on first use and kept: a worker loads
    its models once, whatever engine sends it clips. One per thread, for workers that run several
    tasks at once (Dask ``--nthreads`` > 1): the backends are not thread-safe."""
    from textualize.extract import CueExtractor
    from textualize.manifest import stable_hash

    global _LOADS
    device = resolve_device(device)
    key = (stable_hash(asdict(config), 16), device, threading.get_ident())
    with _LOCK:
        extractor = _EXTRACTORS.get(key)
    if extractor is None:
        if threads:  # for the native libraries the backends load, which read it at import
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        extractor = CueExtractor(config, device=device)
        # torch's own count, set explicitly: Dask's nanny exports OMP_NUM_THREADS=1 to its workers,
        # and thread counts change float summation order (results must match the in-process run)
        if threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        with _LOCK:
            while len(_EXTRACTORS) >= 4:  # a long-lived process that saw many configs keeps the latest
                _EXTRACTORS.pop(next(iter(_EXTRACTORS)))
            _EXTRACTORS[key] = extractor
            _LOADS += 1
    return extractor


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_chunk(out_dir: str, config, chunk: Sequence[Task], device: str = "cpu", threads: int | None = None) -> list[dict]:
    """Extract a chunk of clips in this worker; one result record per clip.

    Each clip's staleness is checked again here: a retried chunk (its first worker died) reports
    the clips that worker finished as ``resumed`` instead of doing them twice."""
    from textualize.extract import extract_one, stale_parts

    out = Path(out_dir)
    results = []
    stale_of = {clip_id: stale_parts(out, clip_id, sha, config) for clip_id, _, sha, _ in chunk}
    todo = [(c, p, s, stale_of[c]) for c, p, s, _ in chunk if stale_of[c]]
    # --asr-pack: the chunk's short clips share Whisper windows, transcribed on a background thread
    pre = worker_extractor(config, device, threads).pack_asr(todo) if len(todo) > 1 else {}
    for clip_id, path, sha, _ in chunk:
        stale = stale_of[clip_id]
        if not stale:
            results.append(resumed_result(out, clip_id))
            continue
        extractor = worker_extractor(config, device, threads)
        result = extract_one(extractor, out_dir, clip_id, path, sha, stale, pre.get(clip_id))
        result.update(worker=worker_id(), model_loads=_LOADS)
        results.append(result)
    return results


def resumed_result(out: Path, clip_id: str) -> dict:
    """Result of a clip whose cues an earlier attempt of the same chunk already wrote."""
    from textualize.cues import MissingCue
    from textualize.extract import load_clip

    cues = load_clip(out, clip_id)
    missing = [m for m in ("transcript", "prosody", "face") if isinstance(getattr(cues, m), MissingCue)
               and getattr(cues, m).reason != "not_requested"]
    return {"clip_id": clip_id, "status": "ok", "seconds": 0.0, "missing": missing, "resumed": True,
            "worker": worker_id()}


class RequeueableChunk:
    """``run_chunk`` as a submitit ``Checkpointable``: on SLURM pre-emption or time-out the array
    task is requeued with the same chunk, and resumes after the clips already on disk."""

    def __init__(self, *args: Any):
        self.args = args

    def __call__(self) -> list[dict]:
        return run_chunk(*self.args)

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(RequeueableChunk(*self.args))


# ---------------------------------------------------------------- engines (driver side)


class Engine:
    """A concurrent.futures-style executor for chunks of clips.

    ``submit_many`` returns objects with ``result()``; ``as_completed`` yields them as they finish.
    ``recover`` is called after a task failed with an infrastructure error (its worker died) and
    before the driver resubmits it."""

    name = "?"
    chunk_size = 1  # clips per task: one keeps the load even; the model stays loaded anyway
    max_retries = 2  # resubmissions of a chunk whose worker was lost
    device = "cpu"

    def __init__(self, workers: int = 1, **options: Any):
        self.workers = max(1, int(workers))
        self.options = options

    def start(self, n_tasks: int, out_dir: str | None = None) -> None:
        """Start (or join) the engine for ``n_tasks`` clips written to ``out_dir``."""

    def submit_many(self, fn: Callable, arg_tuples: Sequence[tuple]) -> list:
        return [self.submit(fn, *args) for args in arg_tuples]

    def submit(self, fn: Callable, *args: Any):
        raise NotImplementedError

    def as_completed(self, futures: Iterable) -> Iterator:
        return as_completed(list(futures))

    def recover(self, error: BaseException) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def threads_per_worker(self) -> int | None:
        return None

    def describe(self) -> dict:
        """What the manifest records about where the run went (no secrets: addresses only)."""
        return {"name": self.name, "workers": self.workers, "chunk_size": self.chunk_size,
                **{k: v for k, v in self.options.items() if v is not None}}

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


class _Deferred:
    """A future that runs its call when asked for the result (the in-process engine: the progress
    bar advances clip by clip, and no process is spawned)."""

    def __init__(self, fn: Callable, args: tuple):
        self.fn, self.args = fn, args

    def result(self, timeout: float | None = None) -> Any:
        return self.fn(*self.args)


def _option(options: dict, key: str, default: Any, cast: Callable = str) -> Any:
    value = options.pop(key, None)
    return default if value is None else cast(value)


@EXECUTORS.register("local")
class LocalEngine(Engine):
    """This machine: in-process for one worker, else spawned worker processes (torch + fork can
    deadlock). A worker that dies breaks the pool; ``recover`` starts a new one."""

    name = "local"

    def __init__(self, workers: int = 1, **options: Any):
        self.device = _option(options, "device", "cpu")
        self.chunk_size = _option(options, "chunk_size", 1, int)
        _no_options_left(options, self.name)
        super().__init__(workers, device=self.device)
        self.pool: ProcessPoolExecutor | None = None

    def threads_per_worker(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.workers)

    def start(self, n_tasks: int, out_dir: str | None = None) -> None:
        self.workers = max(1, min(self.workers, n_tasks))
        if self.workers > 1:
            self._new_pool()

    def _new_pool(self) -> None:
        import multiprocessing as mp

        self.pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))

    def submit(self, fn: Callable, *args: Any):
        return _Deferred(fn, args) if self.pool is None else self.pool.submit(fn, *args)

    def as_completed(self, futures: Iterable) -> Iterator:
        futures = list(futures)
        return iter(futures) if self.pool is None else as_completed(futures)

    def recover(self, error: BaseException) -> None:
        # every future of a broken pool fails; the first failure replaces the pool, once
        if isinstance(error, BrokenProcessPool) and self.pool is not None and getattr(self.pool, "_broken", False):
            self.pool.shutdown(wait=False, cancel_futures=True)
            self._new_pool()

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _require(module: str, extra: str, engine: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ExecutorUnavailableError(
            f"--executor {engine} needs {module.split('.')[0]} ({e}); install it with: pip install 'textualize[{extra}]'"
        ) from None


@EXECUTORS.register("dask")
class DaskEngine(Engine):
    """dask.distributed: ``scheduler`` (``tcp://host:8786``) joins a running cluster, else a
    ``LocalCluster`` of ``workers`` single-threaded processes starts here and stops at the end.
    Workers of a remote cluster need textualize installed and the cue folder on a shared path.
    The scheduler reschedules a dead worker's tasks itself (``allowed-failures``)."""

    name = "dask"

    def __init__(self, workers: int = 1, **options: Any):
        self.scheduler = _option(options, "scheduler", None)
        self.device = _option(options, "device", "cpu")
        self.chunk_size = _option(options, "chunk_size", 1, int)
        self.gpus_per_task = _option(options, "gpus_per_task", 0, float)  # Dask resource "GPU"
        _no_options_left(options, self.name)
        super().__init__(workers, scheduler=self.scheduler, device=self.device, gpus_per_task=self.gpus_per_task or None)
        self.client = self.cluster = None

    def start(self, n_tasks: int, out_dir: str | None = None) -> None:
        _require("distributed", "dask", self.name)
        from distributed import Client, LocalCluster

        try:
            if self.scheduler:
                self.client = Client(self.scheduler, timeout="30s")
            else:
                self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=40)
                self.client = Client(self.cluster)
        except (OSError, TimeoutError) as e:
            self.shutdown()
            raise ExecutorUnavailableError(f"cannot reach the Dask scheduler {self.scheduler}: {e}") from None

    def threads_per_worker(self) -> int | None:
        # torch/OpenMP threads per local worker: the local engine's share, so a local cluster's
        # float results match the in-process run's bit for bit (thread counts change summation order)
        return max(1, (os.cpu_count() or 1) // self.workers) if self.cluster is not None else None

    def submit(self, fn: Callable, *args: Any):
        resources = {"GPU": self.gpus_per_task} if self.gpus_per_task else None
        return self.client.submit(fn, *args, pure=False, resources=resources)

    def as_completed(self, futures: Iterable) -> Iterator:
        from distributed import as_completed as dask_as_completed

        return iter(dask_as_completed(list(futures)))

    def shutdown(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a cluster whose workers already died
                    pass
        self.client = self.cluster = None


@EXECUTORS.register("ray")
class RayEngine(Engine):
    """Ray tasks with per-task resources (``cpus_per_task``, ``gpus_per_task``: Ray sets
    CUDA_VISIBLE_DEVICES for each task). ``address``: ``auto`` (a running cluster on this node),
    ``ray://head:10001``, or none for a local runtime with ``workers`` CPUs. Ray reuses worker
    processes between tasks, so the process-wide extractor cache holds; a dead worker's task is
    retried by Ray (``max_retries``) before the driver's own retry."""

    name = "ray"

    def __init__(self, workers: int = 1, **options: Any):
        self.address = _option(options, "address", None)
        self.device = _option(options, "device", "cpu")
        self.chunk_size = _option(options, "chunk_size", 1, int)
        self.cpus_per_task = _option(options, "cpus_per_task", 1, float)
        self.gpus_per_task = _option(options, "gpus_per_task", 0, float)
        _no_options_left(options, self.name)
        super().__init__(workers, address=self.address, device=self.device, cpus_per_task=self.cpus_per_task,
                         gpus_per_task=self.gpus_per_task or None)
        self.started = False

    def start(self, n_tasks: int, out_dir: str | None = None) -> None:
        ray = _require("ray", "ray", self.name)
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = int(self.workers * self.cpus_per_task)
            kwargs["runtime_env"] = {"env_vars": {k: os.environ[k] for k in ("PYTHONPATH", "OMP_NUM_THREADS") if k in os.environ}}
            for attempt in range(2):  # Ray gives its node a fixed 30 s to come up: short on a loaded machine
                try:
                    ray.init(**kwargs)
                    break
                except Exception as e:  # a bare Exception when the node does not come up
                    ray.shutdown()
                    if attempt:
                        raise ExecutorUnavailableError(f"cannot start or join Ray ({self.address or 'local runtime'}): {e}") from None
            self.started = True
        self.remote = ray.remote(run_chunk).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=3)

    def threads_per_worker(self) -> int:
        return max(1, int(self.cpus_per_task))

    def submit(self, fn: Callable, *args: Any):
        import ray

        remote = self.remote if fn is run_chunk else ray.remote(fn).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=3)
        return remote.remote(*args).future()  # a concurrent.futures.Future

    def shutdown(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


@EXECUTORS.register("slurm")
class SlurmEngine(Engine):
    """SLURM job arrays through submitit: each array task processes a chunk of clips with one
    model load. ``workers`` = array tasks running at once; ``chunk_size`` defaults to an even split
    over them. Options: ``partition``, ``time_min``, ``cpus_per_task``, ``gpus_per_task``,
    ``mem_gb``, ``log_dir`` (default ``CUE_DIR/slurm``), ``cluster`` (``local`` runs the tasks as
    local processes, for tests; ``debug`` in-process). Pre-empted or timed-out tasks are requeued
    (``RequeueableChunk``); a task that died otherwise is resubmitted by the driver."""

    name = "slurm"

    def __init__(self, workers: int = 1, **options: Any):
        self.partition = _option(options, "partition", None)
        self.time_min = _option(options, "time_min", 60, int)
        self.cpus_per_task = _option(options, "cpus_per_task", 1, int)
        self.gpus_per_task = _option(options, "gpus_per_task", 0, int)
        self.mem_gb = _option(options, "mem_gb", None, float)
        self.log_dir = _option(options, "log_dir", None)
        self.cluster = _option(options, "cluster", None)
        self.device = _option(options, "device", "auto" if self.gpus_per_task else "cpu")
        self.fixed_chunk = _option(options, "chunk_size", None, int)
        self.poll_s = _option(options, "poll_s", 5.0, float)
        _no_options_left(options, self.name)
        super().__init__(workers, partition=self.partition, time_min=self.time_min, cpus_per_task=self.cpus_per_task,
                         gpus_per_task=self.gpus_per_task, mem_gb=self.mem_gb, cluster=self.cluster, device=self.device)
        self.executor = None

    def start(self, n_tasks: int, out_dir: str | None = None) -> None:
        submitit = _require("submitit", "slurm", self.name)
        self.chunk_size = self.fixed_chunk or max(1, math.ceil(n_tasks / self.workers))
        # job logs and pickles beside the cues: on the shared filesystem the array tasks also see
        folder = self.log_dir or (str(Path(out_dir) / "slurm") if out_dir else tempfile.mkdtemp(prefix="textualize-slurm-"))
        self.executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        params: dict[str, Any] = {"timeout_min": self.time_min, "cpus_per_task": self.cpus_per_task,
                                  "name": "textualize-cues", "slurm_array_parallelism": self.workers}
        if self.gpus_per_task:
            params["gpus_per_node"] = self.gpus_per_task
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        if self.partition:
            params["slurm_partition"] = self.partition
        self.executor.update_parameters(**params)

    def threads_per_worker(self) -> int:
        return self.cpus_per_task

    def submit_many(self, fn: Callable, arg_tuples: Sequence[tuple]) -> list:
        try:
            with self.executor.batch():  # one job array
                jobs = [self.executor.submit(RequeueableChunk(*args)) if fn is run_chunk else self.executor.submit(fn, *args)
                        for args in arg_tuples]
        except Exception as e:  # sbatch missing or refused: say so instead of a traceback
            raise ExecutorUnavailableError(f"could not submit the SLURM job array: {e}") from None
        return jobs

    def as_completed(self, futures: Iterable) -> Iterator:
        import submitit

        return submitit.helpers.as_completed(list(futures), poll_frequency=self.poll_s)


def _no_options_left(options: dict, engine: str) -> None:
    if options:
        raise ValueError(f"unknown option(s) for --executor {engine}: {', '.join(sorted(options))} "
                         f"(known: {', '.join(ENGINE_OPTIONS[engine])})")


ENGINE_OPTIONS = {
    "local": ("device", "chunk_size"),
    "dask": ("scheduler", "device", "chunk_size", "gpus_per_task"),
    "ray": ("address", "device", "chunk_size", "cpus_per_task", "gpus_per_task"),
    "slurm": ("partition", "time_min", "cpus_per_task", "gpus_per_task", "mem_gb", "log_dir", "cluster",
              "device", "chunk_size", "poll_s"),
}


def make_engine(name: str = "local", workers: int = 1, options: dict | None = None) -> Engine:
    """The engine registered as ``name``, configured (unknown names/options: a clear error)."""
    return EXECUTORS.get(name)(workers, **dict(options or {}))


def executor_spec(name: str | None, scheduler: str | None = None, address: str | None = None,
                  options: dict | None = None, config_file: dict | None = None) -> tuple[str, dict]:
    """(engine name, options) from the CLI: a config file (``executor: slurm`` plus
    ``executor_options: {partition: gpu, ...}``) first, then ``--executor-option KEY=VALUE``, then
    the named flags (``--executor``, ``--scheduler``, ``--address``): later wins. Checked here, so
    a typo fails before any work."""
    config_file = dict(config_file or {})
    unknown = set(config_file) - {"executor", "executor_options"}
    if unknown:
        raise ValueError(f"executor config: unknown key(s) {', '.join(sorted(unknown))} (known: executor, executor_options)")
    name = name or config_file.get("executor") or "local"
    merged = dict(config_file.get("executor_options") or {})
    merged.update(options or {})
    if scheduler:
        merged["scheduler"] = scheduler
    if address:
        merged["address"] = address
    merged = {k.replace("-", "_"): v for k, v in merged.items()}
    make_engine(name, 1, merged)  # unknown name or option: a clear error now
    return name, merged


def run_chunks(engine: Engine, fn: Callable, chunks: list[list[Task]], args: Callable[[list[Task]], tuple],
               on_results: Callable[[list[dict]], None], lost: Callable[[list[Task], BaseException], list[dict]]) -> None:
    """Submit every chunk, hand each finished chunk's results to ``on_results``; a chunk whose
    worker died (the future raises) is resubmitted up to ``engine.max_retries`` times, then its
    clips are recorded as failures (``lost``), never dropped."""
    from textualize.models import ModelUnavailableError
    from textualize.registry import UnknownBackendError

    fatal = (ModelUnavailableError, UnknownBackendError)  # the same on every worker: say so, do not retry
    attempts = {i: 0 for i in range(len(chunks))}
    pending = dict(zip(engine.submit_many(fn, [args(c) for c in chunks]), range(len(chunks))))
    while pending:
        retry: list[int] = []
        for fut in engine.as_completed(list(pending)):
            i = pending.pop(fut)
            try:
                results = fut.result()
            except fatal:
                raise
            except Exception as e:  # the worker was lost: killed, pre-empted, out of memory, node down
                engine.recover(e)
                if attempts[i] < engine.max_retries:
                    attempts[i] += 1
                    retry.append(i)
                else:
                    on_results(lost(chunks[i], e))
                continue
            on_results(results)
        if retry:
            time.sleep(0.1 * max(attempts[i] for i in retry))
            pending.update(zip(engine.submit_many(fn, [args(chunks[i]) for i in retry]), retry))
