"""Per-file work as submitit jobs: SLURM array jobs over chunks of files, or local job processes.

Where the work runs changes no output, so it is not a parameter of the pipeline: the executor is
not in ``params.yaml`` and choosing another one makes DVC rerun nothing. It is named by a file of
``conf/executor/`` (or a path to a YAML file) in the environment variable ``SEDA_EXECUTOR``
(``SEDA_EXECUTOR=slurm dvc repro``) or by ``seda predict --executor slurm``; unset, the work runs
on this machine's cores (:mod:`seda.parallel`).

A job runs :func:`seda.parallel.map_files` over its chunk on the CPUs it was given and returns
the :class:`~seda.parallel.Outcome` of every file; the parent yields them as the jobs finish,
exactly as the local pool does, so the stage writes the same bytes (the per-file cache and the
atomic writes are the stage's own, on the shared file system). A preempted or timed-out job is
requeued by submitit with the files it finished (:meth:`ChunkJob.checkpoint`); a chunk whose job
died is submitted again, up to ``max_retries`` times. An :class:`~seda.parallel.EnvironmentFailure`
inside a job (disk full, ...) stops the stage in the parent.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from tqdm.auto import tqdm

from seda.config import build
from seda.errors import ConfigError
from seda.parallel import THREAD_VARS, EnvironmentFailure, Outcome, map_files

log = logging.getLogger(__name__)

ENV_VAR = "SEDA_EXECUTOR"
CONF_DIR = Path("conf/executor")
LOCAL = "local"
ENGINES = ("local", "submitit")
CLUSTERS = ("slurm", "local")


@dataclass(frozen=True)
class ExecutorSettings:
    """Where per-file work runs. Not a pipeline parameter: it changes no output."""

    # "local": this machine's cores (seda.parallel); "submitit": jobs through submitit.
    engine: str = "local"
    # submitit's cluster: "slurm" (sbatch array jobs) or "local" (job processes on this machine,
    # what the tests and CI use in place of SLURM).
    cluster: str = "slurm"
    # Files per job. Each job pays its start-up (imports, models) once.
    chunk_size: int = 64
    # Worker processes inside a job; 0: the CPUs the job was given.
    workers: int = 0
    # Most jobs running at once (SLURM's array throttle; local job processes).
    array_parallelism: int = 32
    # SLURM partition and account; null: the cluster's defaults.
    partition: str | None = None
    account: str | None = None
    # Wall time of a job; a job that runs out is checkpointed and requeued with what it finished.
    timeout_min: int = 120
    mem_gb: float = 16.0
    cpus_per_task: int = 8
    gpus_per_node: int = 0
    # Shell lines run before each job (`module load ...`, `source .venv/bin/activate`).
    setup: list[str] = field(default_factory=list)
    # Any other sbatch option, e.g. {qos: high, constraint: a100}.
    slurm_additional: dict[str, Any] = field(default_factory=dict)
    # Times a chunk is submitted again after its job died (node failure, out of memory, kill).
    max_retries: int = 2
    # Job scripts, pickles and logs (relative to the working directory); never a tracked output.
    log_folder: str = ".seda/submitit"
    # Seconds between two looks at the running jobs.
    poll_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"executor engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if self.cluster not in CLUSTERS:
            raise ConfigError(f"executor cluster {self.cluster!r}: use {' or '.join(CLUSTERS)}")
        for name in ("chunk_size", "array_parallelism", "timeout_min", "cpus_per_task"):
            if getattr(self, name) < 1:
                raise ConfigError(f"executor {name} must be at least 1")
        for name in ("workers", "gpus_per_node", "max_retries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"executor {name} must not be negative")
        if self.mem_gb <= 0 or self.poll_seconds <= 0:
            raise ConfigError("executor mem_gb and poll_seconds must be positive")


def load_executor(name: str | None = None) -> ExecutorSettings:
    """The executor ``name`` (a file of ``conf/executor/``, or a path to a ``.yaml``), else the
    one ``SEDA_EXECUTOR`` names; ``local`` (this machine's cores) when neither is given."""
    name = name or os.environ.get(ENV_VAR) or LOCAL
    path = Path(name) if name.endswith((".yaml", ".yml")) else CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        if name == LOCAL:
            return ExecutorSettings()
        known = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))
        raise ConfigError(
            f"executor {name!r}: {path} not found"
            + (f" (known: {', '.join(known)})" if known else "")
        )
    try:
        return build(ExecutorSettings, OmegaConf.to_container(OmegaConf.load(path)), "executor")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


@dataclass
class ChunkResult:
    """What a job returns: the outcome of every file of its chunk, in chunk order, or the
    environment failure that stopped it."""

    outcomes: list[Outcome]
    environment_failure: str | None = None


@dataclass(frozen=True)
class _Numbered:
    """An item with its place in the chunk (printed as the item, in messages about it)."""

    index: int
    item: Any

    def __str__(self) -> str:
        return str(self.item)


class ChunkJob:
    """One submitit job: ``fn`` over a chunk of items, resumable after preemption.

    The function and items travel pickled and are unpickled only once the job has set the
    workers' thread counts, before any numerical library is imported.
    """

    def __init__(self, payload: bytes, n_items: int, workers: int, cwd: str) -> None:
        self.payload = payload
        self.n_items = n_items
        self.workers = workers
        self.cwd = cwd
        self.done: dict[int, Outcome] = {}

    def __call__(self) -> ChunkResult:
        for var in THREAD_VARS:  # one thread, as in the local pool's workers (seda.parallel)
            os.environ[var] = "1"
        os.chdir(self.cwd)
        fn, items, known_errors = pickle.loads(self.payload)
        todo = [_Numbered(i, item) for i, item in enumerate(items) if i not in self.done]
        try:
            for out in map_files(
                _Applied(fn),
                todo,
                workers=self.workers,
                known_errors=known_errors,
                executor=LOCAL,
            ):
                self.done[out.item.index] = Outcome(out.item.item, out.result, out.error)
        except EnvironmentFailure as err:
            return ChunkResult([], str(err))
        return ChunkResult([self.done[i] for i in range(self.n_items)])

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on preemption or timeout: requeue with the outcomes so far."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


@dataclass(frozen=True)
class _Applied:
    """``fn`` of a numbered item (picklable, unlike a closure)."""

    fn: Callable[[Any], Any]

    def __call__(self, numbered: _Numbered) -> Any:
        return self.fn(numbered.item)


class JobFailure(EnvironmentFailure):
    """A chunk's job kept dying (node failure, out of memory, killed): the stage stops."""


def make_executor(settings: ExecutorSettings, name: str) -> Any:
    """A submitit executor with the job resources of ``settings``."""
    try:
        import submitit
    except ImportError as err:
        raise ConfigError(
            "the submitit engine needs submitit: pip install 'seda[cluster]'"
        ) from err
    executor = submitit.AutoExecutor(folder=settings.log_folder, cluster=settings.cluster)
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": settings.timeout_min,
        "mem_gb": settings.mem_gb,
        "cpus_per_task": settings.cpus_per_task,
        "gpus_per_node": settings.gpus_per_node,
        "nodes": 1,
        "tasks_per_node": 1,
    }
    if settings.cluster == "slurm":
        params.update(
            slurm_partition=settings.partition,
            slurm_account=settings.account,
            slurm_array_parallelism=settings.array_parallelism,
            slurm_setup=list(settings.setup),
            slurm_additional_parameters=dict(settings.slurm_additional),
        )
    else:
        params.update(local_setup=list(settings.setup))
    executor.update_parameters(**params)
    return executor


def map_chunks(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    settings: ExecutorSettings,
    *,
    desc: str = "",
    known_errors: tuple[type[BaseException], ...] = (),
    unit: str = "file",
) -> Iterator[Outcome]:
    """:func:`seda.parallel.map_files` through submitit: one job per ``chunk_size`` items
    (``unit`` names them in the progress bar and the log: files, or the backbones' batches).

    Yields every item's outcome, a chunk at a time as its job finishes. A chunk whose job died
    is submitted again; after ``max_retries`` more deaths the stage stops with
    :class:`JobFailure` naming the job's log.
    """
    if not items:
        return
    import cloudpickle  # comes with submitit; pickles a __main__ function by value
    from submitit.core.utils import UncompletedJobError

    size = settings.chunk_size
    chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]
    executor = make_executor(settings, "seda-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", desc) or "map"))
    cwd = os.getcwd()

    def job_of(k: int) -> ChunkJob:
        payload = cloudpickle.dumps((fn, chunks[k], known_errors))
        return ChunkJob(payload, len(chunks[k]), settings.workers, cwd)

    # SLURM throttles one array itself; local job processes are started a window at a time.
    window = len(chunks) if settings.cluster == "slurm" else settings.array_parallelism
    waiting = deque(range(len(chunks)))
    running: dict[Any, int] = {}
    deaths = [0] * len(chunks)

    def submit() -> None:
        batch = [waiting.popleft() for _ in range(min(len(waiting), window - len(running)))]
        if not batch:
            return
        with executor.batch():
            jobs = [executor.submit(job_of(k)) for k in batch]
        if settings.cluster == "local":
            for job in jobs:  # results on this machine's disk: no network file system to wait for
                job._results_timeout_s = 1
        running.update(zip(jobs, batch, strict=True))

    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=None, dynamic_ncols=True)
    try:
        submit()
        log.info("%s: %d %ss in %d %s jobs", desc, len(items), unit, len(chunks), settings.cluster)
        while running:
            finished = [job for job in running if job.done()]
            if not finished:
                time.sleep(settings.poll_seconds)
                continue
            for job in finished:
                k = running.pop(job)
                try:
                    result: ChunkResult = job.result()
                except UncompletedJobError as err:
                    deaths[k] += 1
                    where = job.paths.stderr
                    if deaths[k] > settings.max_retries:
                        raise JobFailure(
                            f"job {job.job_id} of chunk {k} failed {deaths[k]} times; see {where}"
                        ) from err
                    log.warning("%s: job %s of chunk %d failed; resubmitting", desc, job.job_id, k)
                    waiting.appendleft(k)
                    continue
                if result.environment_failure is not None:
                    raise EnvironmentFailure(result.environment_failure)
                _forget(job)
                yield from result.outcomes
                bar.update(len(chunks[k]))
            submit()
    finally:
        for job in running:
            job.cancel(check=False)
        bar.close()


def _forget(job: Any) -> None:
    """Delete a finished job's pickles (they hold all its results); its logs stay."""
    for path in (job.paths.submitted_pickle, job.paths.result_pickle):
        Path(path).unlink(missing_ok=True)
