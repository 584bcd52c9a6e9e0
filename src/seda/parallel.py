"""Run a per-file function on all cores with a progress bar; one bad file never stops the run."""

from __future__ import annotations

import errno
import logging
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
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


def resolve_workers(workers: int | None) -> int:
    """0 or None means all cores."""
    return max(1, workers or os.cpu_count() or 1)


def _init_worker() -> None:
    """One thread per worker process (torch and BLAS read this when they are first imported)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"


def map_files(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int | None = None,
    desc: str = "",
    known_errors: tuple[type[BaseException], ...] = (),
) -> Iterator[Outcome[T, R]]:
    """Apply ``fn`` to every item, in worker processes when ``workers`` > 1, showing progress.

    Exceptions of ``known_errors`` become ``Outcome.error`` with their message; any other exception
    also becomes an error (with the traceback logged) so that one file cannot end the whole run.
    """
    n_workers = min(resolve_workers(workers), max(1, len(items)))
    bar = tqdm(total=len(items), desc=desc, unit="file", disable=None, dynamic_ncols=True)
    try:
        if n_workers == 1:
            for item in items:
                yield _call(fn, item, known_errors)
                bar.update()
            return
        ctx = mp.get_context("forkserver")
        with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker) as pool:
            futures = {pool.submit(_call, fn, item, known_errors): item for item in items}
            for fut in as_completed(futures):
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
