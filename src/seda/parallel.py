"""Run a per-file function on all cores with a progress bar; one bad file never stops the run.

Workers are lean: each runs one thread (BLAS, OpenMP and torch limited in the worker, so that
results do not depend on the number of processes), imports only what the per-file function's
module imports (plus the parent's ``__main__``, as multiprocessing does), and holds at most
two items per worker at a time, so the parent never holds the inputs or results of more files
than it is working on. How many workers run follows the cores this process may use and the
memory available (:func:`worker_count`).
"""

from __future__ import annotations

import errno
import itertools
import logging
import multiprocessing as mp
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[T, R]):
    item: T
    result: R | None
    error: str | None


# Memory a worker process is assumed to need when none is given: the heaviest per-file work
# (Silero VAD and noise reduction on five-minute blocks, with torch loaded) peaks near 1 GiB.
WORKER_MEMORY = 1 << 30
# Items queued per worker: one running and one waiting, so a worker never idles between files.
_IN_FLIGHT_PER_WORKER = 2
# Thread counts that libraries loaded after the worker starts read when they load.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_cores() -> int:
    """Cores this process may run on (its affinity: a SLURM job's CPUs, ``taskset``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes that new processes can use without swapping; None when unknown."""
    try:
        import psutil  # a dependency of DVC's

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def worker_count(
    requested: int | None, n_items: int, cores: int, available: int | None, per_worker: int
) -> int:
    """Processes to start: ``requested`` (0 or None: one per core), no more than there are
    items, and no more than fit in ``available`` bytes at ``per_worker`` bytes each; at least 1."""
    n = min(requested or cores, max(1, n_items))
    if available is not None and per_worker > 0:
        n = min(n, available // per_worker)
    return max(1, n)


def resolve_workers(workers: int | None) -> int:
    """0 or None means all cores."""
    return max(1, workers or cpu_cores())


def _init_worker(nice: int = 0) -> None:
    """One thread per worker process, ``nice`` lower in CPU priority. The parent's ``__main__``
    (and what it imports) is loaded before this runs, so the libraries already loaded are
    limited through threadpoolctl and torch, the ones loaded later through the environment."""
    if nice:
        os.nice(nice)
    for var in THREAD_VARS:
        os.environ[var] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def worker_pool(n_workers: int, nice: int = 0) -> ProcessPoolExecutor:
    """``n_workers`` lean worker processes: started from a forkserver (no copy of this process's
    memory or threads), one thread each; ``nice`` > 0 lowers their CPU priority (helpers that
    must not slow down the process they help)."""
    ctx = mp.get_context("forkserver")
    return ProcessPoolExecutor(
        n_workers, mp_context=ctx, initializer=_init_worker, initargs=(nice,)
    )


def map_files(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int | None = None,
    desc: str = "",
    known_errors: tuple[type[BaseException], ...] = (),
    executor: str | None = None,
    worker_memory: int = WORKER_MEMORY,
) -> Iterator[Outcome[T, R]]:
    """Apply ``fn`` to every item, in worker processes when ``workers`` > 1, showing progress.

    ``workers``: 0 or None for one per core; fewer start when the memory available does not
    hold that many at ``worker_memory`` bytes each (:func:`worker_count`).

    ``executor`` (default: ``$SEDA_EXECUTOR``) may send the items to submitit jobs instead
    (:mod:`seda.cluster`); the outcomes are the same.

    Exceptions of ``known_errors`` become ``Outcome.error`` with their message; any other exception
    also becomes an error (with the traceback logged) so that one file cannot end the whole run.
    """
    from seda.cluster import load_executor, map_chunks  # seda.cluster imports this module

    remote = load_executor(executor)
    if remote.engine == "submitit":
        yield from map_chunks(fn, items, remote, desc=desc, known_errors=known_errors)
        return
    n_workers = worker_count(workers, len(items), cpu_cores(), available_memory(), worker_memory)
    if workers and n_workers < min(workers, len(items)):
        log.warning("%s: %d worker(s), not %d: no more fit in memory", desc, n_workers, workers)
    bar = tqdm(total=len(items), desc=desc, unit="file", disable=None, dynamic_ncols=True)
    try:
        if n_workers == 1:
            for item in items:
                yield _call(fn, item, known_errors)
                bar.update()
            return
        with worker_pool(n_workers) as pool:
            pending = iter(items)
            running: set[Future[Outcome[T, R]]] = set()
            while True:
                # Hand out items only as workers free up: nothing else is pickled or held.
                free = n_workers * _IN_FLIGHT_PER_WORKER - len(running)
                for item in itertools.islice(pending, free):
                    running.add(pool.submit(_call, fn, item, known_errors))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
                    bar.update()
    finally:
        bar.close()


# OS errors that say the machine, not the input, is at fault: they stop the stage (never a
# "rejected" row that DVC would then record as a good result).
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.ENOMEM}
)


class EnvironmentFailure(RuntimeError):
    """The machine failed (disk full, permission denied, ...): the stage must stop, not skip."""


def is_environment_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS


def _call(fn: Callable[[Any], Any], item: Any, known: tuple[type[BaseException], ...]) -> Outcome:
    try:
        return Outcome(item, fn(item), None)
    except OSError as err:
        if is_environment_error(err):
            raise EnvironmentFailure(f"{err.strerror or err}: {err.filename or item}") from err
        if isinstance(err, known):
            return Outcome(item, None, str(err) or type(err).__name__)
        log.error("unexpected error on %s:\n%s", item, traceback.format_exc())
        return Outcome(item, None, f"unexpected {type(err).__name__}: {err}")
    except known as err:
        return Outcome(item, None, str(err) or type(err).__name__)
    except Exception as err:
        log.error("unexpected error on %s:\n%s", item, traceback.format_exc())
        return Outcome(item, None, f"unexpected {type(err).__name__}: {err}")
